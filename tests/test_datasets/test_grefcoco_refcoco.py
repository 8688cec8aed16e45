import json
import os.path as osp
import pickle

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from conftest import shared

from omniris_mm.datasets import GRefCocoDataset, OmniDataError, RefCocoOmniDataset

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadOmniAnnotations'), dict(type='PackOmniInputs')]


def coco():
    return shared('coco_val2017_sample')


def text_refs():
    with open(osp.join(shared('omniref_real_mini'), 'OmniRef.json')) as f:
        refs = json.load(f)['text-test']
    for i, ref in enumerate(refs):
        ref['split'] = 'val' if i % 2 == 0 else 'testA'
        ref['file_name'] = f'COCO_train2014_{ref["image_id"]:012d}_{ref["ref_id"]}.jpg'  # refer-style names
    return refs


def union_of(ann_ids):
    with open(osp.join(coco(), 'instances.json')) as f:
        inst = json.load(f)
    anns = {a['id']: a for a in inst['annotations']}
    masks = [mask_utils.decode(anns[a]['segmentation']) for a in ann_ids]
    return np.any(masks, 0) if masks else None


def test_grefcoco_gives_one_sample_per_sentence_in_the_shared_layout(tmp_path):
    (tmp_path / 'grefs(unc).json').write_text(json.dumps(text_refs()))
    ds = GRefCocoDataset(
        data_root=str(tmp_path),
        ann_file=osp.join(coco(), 'instances.json'),
        split_file='grefs(unc).json',
        split='val',
        data_prefix=dict(img_path=coco()),
        pipeline=PIPELINE,
        test_mode=True,
    )
    refs = [r for r in text_refs() if r['split'] == 'val']
    assert len(ds) == sum(len(r['sentences']) for r in refs)
    for idx, ref in enumerate(r for r in refs for _ in r['sentences']):
        sample = ds[idx]['data_samples']
        ids = [a for a in ref['ann_id'] if a >= 0]
        assert sample.img_path.endswith(f'{ref["image_id"]:012d}.jpg')
        assert sample.gt_no_target == (not ids) and sample.prompt_modality == 'text'
        if ids:
            np.testing.assert_array_equal(sample.gt_sem_seg.sem_seg[0].numpy() == 1, union_of(ids))
        else:
            assert not sample.gt_sem_seg.sem_seg.any()


def test_refcoco_wraps_mmdet_and_keeps_every_sentence(tmp_path):
    refs = [
        dict(
            ref_id=1,
            image_id=142238,
            ann_id=14,
            category_id=37,
            split='testA',
            sentences=[
                dict(raw='The ball', sent='the ball', sent_id=1),
                dict(raw='ball in the air', sent='ball in the air', sent_id=2),
            ],
        ),
        dict(
            ref_id=2,
            image_id=439180,
            ann_id=33,
            category_id=8,
            split='testA',
            sentences=[dict(raw='red truck', sent='red truck', sent_id=3)],
        ),
        dict(
            ref_id=3,
            image_id=439180,
            ann_id=32,
            category_id=8,
            split='val',
            sentences=[dict(raw='other truck', sent='other truck', sent_id=4)],
        ),
    ]
    with open(tmp_path / 'refs(unc).p', 'wb') as f:
        pickle.dump(refs, f)
    ds = RefCocoOmniDataset(
        data_root=str(tmp_path),
        ann_file=osp.join(coco(), 'instances.json'),
        split_file='refs(unc).p',
        split='testA',
        data_prefix=dict(img_path=coco()),
        pipeline=PIPELINE,
        test_mode=True,
    )
    assert [ds[i]['data_samples'].text for i in range(len(ds))] == ['the ball', 'ball in the air', 'red truck']
    sample = ds[2]['data_samples']
    assert sample.setting == '1v1' and sample.gt_instances.ann_ids.tolist() == [33]
    np.testing.assert_array_equal(sample.gt_sem_seg.sem_seg[0].numpy() == 1, union_of([33]))
    with pytest.raises(OmniDataError, match='annotation file not found'):
        RefCocoOmniDataset(
            data_root=str(tmp_path),
            ann_file=osp.join(coco(), 'instances.json'),
            split_file='refs(umd).p',
            split='val',
            data_prefix=dict(img_path=coco()),
            pipeline=PIPELINE,
        )
