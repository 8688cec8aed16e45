"""Polygon annotations (OmniShapes' squares and triangles; circles are RLE) load pixel for pixel as
pycocotools rasterises them, for targets and references."""

import json
import os.path as osp

import numpy as np
import pycocotools.mask as mask_utils
from conftest import PIPELINE

from omniris_mm.datasets import OmniRefDataset


def rasterise(seg, h, w):
    """pycocotools' own decoding of a polygon list or an RLE."""
    rle = mask_utils.merge(mask_utils.frPyObjects(seg, h, w)) if isinstance(seg, list) else seg
    return mask_utils.decode(rle).astype(bool)


def test_polygon_and_rle_annotations_decode_as_pycocotools_does(omnishapes):
    split = 'visual-test'
    with open(osp.join(omnishapes, 'instances.json')) as f:
        inst = json.load(f)[split]
    anns = {a['id']: a for a in inst['annotations']}
    kinds = {type(a['segmentation']).__name__ for a in anns.values()}
    assert kinds == {'list', 'dict'}  # both forms are in the fixture
    with open(osp.join(omnishapes, 'SuppImageAnns.json')) as f:
        supp = {e['annotations']['id']: e for entries in json.load(f).values() for e in entries}
    ds = OmniRefDataset(
        data_root=omnishapes, split=split, data_prefix=dict(img_path='images/'), pipeline=PIPELINE, test_mode=True
    )
    polygons = 0
    for idx in range(len(ds)):
        sample = ds[idx]['data_samples']
        h, w = sample.ori_shape
        for aid, mask in zip(sample.gt_instances.ann_ids.tolist(), sample.gt_instances.masks.masks):
            polygons += isinstance(anns[aid]['segmentation'], list)
            np.testing.assert_array_equal(mask.astype(bool), rasterise(anns[aid]['segmentation'], h, w))
        ref = supp[sample.ref_metas[0]['ann_id']]
        expected = rasterise(ref['annotations']['segmentation'], ref['height'], ref['width'])
        np.testing.assert_array_equal(sample.ref_masks[0][0].numpy().astype(bool), expected)
    assert polygons > 0
