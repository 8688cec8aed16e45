"""Negative exemplars across images (issue 13 point 3): "like this one, not like that one"."""

import json
import os.path as osp
from collections import defaultdict

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from conftest import PIPELINE
from mmengine.structures import PixelData

from omniris_mm.datasets import CocoVisualPromptDataset


def ann_mask(segmentation, h, w):
    if isinstance(segmentation, list):  # polygons
        return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(segmentation, h, w))).astype(bool)
    return mask_utils.decode(segmentation).astype(bool)


def negatives(omnishapes, per_image, **kwargs):
    """Only the negative-exemplar samples of OmniShapes' test instances."""
    return CocoVisualPromptDataset(
        ann_file=osp.join(omnishapes, 'instances_test.json'),
        data_prefix=dict(img_path=osp.join(omnishapes, 'images')),
        targeted=False,
        no_target_per_image=0,
        negatives_per_image=per_image,
        pipeline=PIPELINE,
        test_mode=True,
        **kwargs,
    )


def test_negative_exemplar_samples_from_a_coco_instance_file(omnishapes):
    ann_file = osp.join(omnishapes, 'instances_test.json')
    ds = negatives(omnishapes, 2)
    with open(ann_file) as f:
        coco = json.load(f)
    cats_of = defaultdict(set)
    anns_of = defaultdict(list)
    for a in coco['annotations']:
        if not a.get('iscrowd', 0):
            cats_of[a['image_id']].add(a['category_id'])
            anns_of[(a['image_id'], a['category_id'])].append(a)
    # a category serves in an image when another image has it too (the references come from elsewhere)
    servable = {
        img: {c for c in cats if any(c in cats_of[o] for o in cats_of if o != img)} for img, cats in cats_of.items()
    }
    expected = sum(min(2, len(s) * (len(s) - 1)) for s in servable.values())
    assert expected > 0 and len(ds) == expected
    seen = set()
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        pos, neg = info['visual_prompts']
        img = info['img_id']
        assert not pos.get('negative') and neg['negative'] is True
        assert pos['category_id'] != neg['category_id'] and {pos['category_id'], neg['category_id']} <= servable[img]
        assert pos['img_id'] != img and neg['img_id'] != img
        # the targets: the positive kind's instances only, though the negative kind is in the image too
        expected_ids = sorted(a['id'] for a in anns_of[(img, pos['category_id'])])
        assert sorted(t['ann_id'] for t in info['instances']) == expected_ids
        seen.add((img, pos['category_id'], neg['category_id']))
        packed = ds[i]['data_samples']
        assert packed.prompt_types[0] in ('mask', 'box', 'scribble')
        assert packed.prompt_types[1] in ('neg_mask', 'neg_box', 'neg_scribble')
        assert packed.ref_metas[1]['negative'] is True and 'negative' not in packed.ref_metas[0]
        h, w = packed.gt_sem_seg.sem_seg.shape[1:]
        union = np.any([ann_mask(a['segmentation'], h, w) for a in anns_of[(img, pos['category_id'])]], 0)
        np.testing.assert_array_equal(packed.gt_sem_seg.sem_seg[0].numpy() == 1, union)
    assert len(seen) == len(ds)  # no pair twice in an image


def test_excluded_kind_and_the_same_samples_without_the_negative(omnishapes):
    from omniris_mm.evaluation import OmniRISMetric

    ann_file = osp.join(omnishapes, 'instances_test.json')
    full, dropped = negatives(omnishapes, 1), negatives(omnishapes, 1, drop_negatives=True)
    with open(ann_file) as f:
        anns = [a for a in json.load(f)['annotations'] if not a.get('iscrowd', 0)]
    metric = OmniRISMetric(instances=False)
    hit = total = 0
    for i in range(len(full)):
        a, b = full.get_data_info(i), dropped.get_data_info(i)
        [pos] = b['visual_prompts']
        assert pos['ann_id'] == a['visual_prompts'][0]['ann_id'] and a['prompt_seed'] == b['prompt_seed']
        packed = full[i]['data_samples']
        h, w = packed.gt_sem_seg.sem_seg.shape[1:]
        neg_cat = a['visual_prompts'][1]['category_id']
        excl = np.any(
            [
                ann_mask(x['segmentation'], h, w)
                for x in anns
                if (x['image_id'], x['category_id']) == (a['img_id'], neg_cat)
            ],
            0,
        )
        np.testing.assert_array_equal(packed.gt_excluded.sem_seg[0].numpy() > 0, excl)
        # an answer that is the whole left half of the image
        pred = np.zeros((h, w), bool)
        pred[:, : w // 2] = True
        hit, total = hit + int((pred & excl).sum()), total + int(excl.sum())
        packed.pred_sem_seg = PixelData(sem_seg=torch.from_numpy(pred[None].astype(np.uint8)))
        packed.pred_no_target = False
        metric.process({}, [packed])
    assert metric.evaluate(len(full))['excluded'] == pytest.approx(100 * hit / total)
