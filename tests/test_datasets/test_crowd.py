"""Crowd annotations (iscrowd=1) of a referred category are void (255) in the union target and never
instances to match, in every dataset; crowd='target' keeps the published treatment."""

import json
import os.path as osp
import pickle

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from conftest import PIPELINE, shared

from omniris_mm.datasets import CocoVisualPromptDataset, GRefCocoDataset, OmniRefDataset, RefCocoOmniDataset
from omniris_mm.evaluation.metrics.omniris_metric import sample_counts

TEXT = [dict(type='LoadImageFromFile'), dict(type='LoadOmniAnnotations'), dict(type='PackOmniInputs')]
VISUAL = PIPELINE


def coco_root():
    return shared('coco_val2017_sample')


def annotations(path=None, split=None):
    with open(path or osp.join(coco_root(), 'instances.json')) as f:
        inst = json.load(f)
    inst = inst[split] if split else inst
    sizes = {i['id']: (i['height'], i['width']) for i in inst['images']}
    return {a['id']: a for a in inst['annotations']}, sizes


def decode(ann, size):
    seg = ann['segmentation']
    if isinstance(seg, list) or isinstance(seg.get('counts'), list):  # polygons / uncompressed RLE
        seg = (
            mask_utils.merge(mask_utils.frPyObjects(seg, *size))
            if isinstance(seg, list)
            else mask_utils.frPyObjects(seg, *size)
        )
    return mask_utils.decode(seg).astype(bool)


def expected_map(image_id, target_ids, source=()):
    """The union of the targets as 1, the image's crowds of their categories elsewhere as 255."""
    anns, sizes = annotations(*source)
    size = sizes[image_id]
    cats = {anns[a]['category_id'] for a in target_ids}
    union = np.any([decode(anns[a], size) for a in target_ids], 0)
    crowd = [a for a in anns.values() if a['image_id'] == image_id and a['iscrowd'] and a['category_id'] in cats]
    out = union.astype(np.uint8)
    for a in crowd:
        out[decode(a, size) & ~union] = 255
    return out, [a['id'] for a in crowd]


def check(sample, image_id, target_ids, source=()):
    seg, crowd_ids = expected_map(image_id, target_ids, source)
    assert crowd_ids, 'the fixture must hold a crowd of the referred category'
    np.testing.assert_array_equal(sample.gt_sem_seg.sem_seg[0].numpy(), seg)
    assert sorted(sample.gt_instances.ann_ids.tolist()) == sorted(target_ids)
    assert len(sample.gt_instances.masks) == len(target_ids)
    assert sorted(sample.ignored_instances.ann_ids.tolist()) == crowd_ids


def test_coco_visual_prompts_void_the_crowd():
    anns, _ = annotations()
    ds = CocoVisualPromptDataset(
        ann_file=osp.join(coco_root(), 'instances.json'),
        data_prefix=dict(img_path=coco_root()),
        category_ids=[1],
        pipeline=VISUAL,
        test_mode=True,
    )
    idx = next(
        i for i in range(len(ds)) if ds.get_data_info(i)['img_id'] == 439180 and ds.get_data_info(i)['instances']
    )
    persons = [a['id'] for a in anns.values() if a['image_id'] == 439180 and a['category_id'] == 1 and not a['iscrowd']]
    check(ds[idx]['data_samples'], 439180, persons)


def grefs(tmp_path, refs):
    (tmp_path / 'grefs(unc).json').write_text(json.dumps(refs))
    return GRefCocoDataset(
        data_root=str(tmp_path),
        ann_file=osp.join(coco_root(), 'instances.json'),
        split_file='grefs(unc).json',
        split='val',
        data_prefix=dict(img_path=coco_root()),
        pipeline=TEXT,
        test_mode=True,
    )


def person_refs():
    anns, _ = annotations()
    person = next(a for a in anns.values() if a['image_id'] == 142238 and a['category_id'] == 1 and not a['iscrowd'])
    crowd = next(a for a in anns.values() if a['image_id'] == 142238 and a['category_id'] == 1 and a['iscrowd'])
    ref = dict(ref_id=1, image_id=142238, split='val', file_name='000000142238.jpg', category_id=1,
               sentences=[dict(sent='the player', sent_id=1)])  # fmt: skip
    # One ref to a person and the crowd (the crowd is dropped from the targets), one to the crowd alone.
    return [dict(ref, ann_id=[person['id'], crowd['id']]), dict(ref, ref_id=2, ann_id=[crowd['id']])], person, crowd


def test_grefcoco_voids_the_crowd_and_keeps_a_crowd_only_ref(tmp_path):
    refs, person, crowd = person_refs()
    ds = grefs(tmp_path, refs)
    check(ds[0]['data_samples'], 142238, [person['id']])
    assert len(ds.crowd_only) == 1 and ds.crowd_only[0].endswith('[val] record 1 ref_id=2 sent_id=1')
    only = ds[1]['data_samples']
    assert only.gt_instances.ann_ids.tolist() == [crowd['id']] and len(only.ignored_instances) == 0
    np.testing.assert_array_equal(only.gt_sem_seg.sem_seg[0].numpy(), decode(crowd, (only.ori_shape)).astype(np.uint8))


def test_refcoco_voids_the_crowd(tmp_path):
    refs, person, _ = person_refs()
    ref = dict(refs[0], ann_id=person['id'])
    with open(tmp_path / 'refs(unc).p', 'wb') as f:
        pickle.dump([ref], f)
    ds = RefCocoOmniDataset(
        data_root=str(tmp_path),
        ann_file=osp.join(coco_root(), 'instances.json'),
        split_file='refs(unc).p',
        data_prefix=dict(img_path=coco_root() + '/'),
        pipeline=TEXT,
        test_mode=True,
    )
    check(ds[0]['data_samples'], 142238, [person['id']])


def test_omniref_voids_the_crowd_and_crowd_target_keeps_the_published_treatment():
    root = shared('omniref_real_mini')
    kwargs = dict(data_root=root, split='visual-test', data_prefix=dict(img_path='images/'), pipeline=VISUAL,
                  test_mode=True)  # fmt: skip
    ds = OmniRefDataset(on_invalid='skip', **kwargs)  # record 1 has no reference (see test_omniref)
    with open(osp.join(root, 'OmniRef.json')) as f:
        record = json.load(f)['visual-test'][0]
    source = (osp.join(root, 'instances.json'), 'visual-test')
    check(ds[0]['data_samples'], record['image_id'], record['ann_id'], source)
    published = OmniRefDataset(crowd='target', on_invalid='skip', **kwargs)[0]['data_samples']
    seg, _ = expected_map(record['image_id'], record['ann_id'], source)
    np.testing.assert_array_equal(published.gt_sem_seg.sem_seg[0].numpy(), (seg == 1).astype(np.uint8))
    assert len(published.ignored_instances) == 0
    with pytest.raises(ValueError, match="crowd must be 'ignore' or 'target'"):
        OmniRefDataset(crowd='drop', **kwargs)


def test_the_metric_does_not_score_void_pixels():
    gt = torch.tensor([[1, 1, 255, 255], [0, 0, 255, 0]])
    pred = torch.tensor([[1, 0, 1, 1], [1, 0, 1, 0]])
    # valid pixels: 5; I = 1 (pixel 0,0), U = |{(0,0), (0,1), (1,0)}| = 3
    assert sample_counts(pred, gt, False, False) == dict(bucket='TN', inter=1, union=3, iou=1 / 3)
    # a no-target sample predicted as targeted: only the valid predicted pixels count
    assert sample_counts(pred, torch.where(gt == 1, 0, gt), True, False)['union'] == 2
