""".dev_scripts/draw_prompt_kinds.py: one panel per new prompt kind, its examples picked by rule."""

import json
import os.path as osp

import numpy as np
import pytest
from conftest import REPO, load_script

tool = load_script('.dev_scripts', 'draw_prompt_kinds.py')


def test_the_panels_follow_their_rules_and_score_their_answers(omnishapes):
    from pycocotools import mask as mask_utils

    from omniris_mm.apis import OmniRISInferencer

    ann_file = osp.join(omnishapes, 'instances_test.json')
    with open(ann_file) as f:
        coco = json.load(f)
    kinds = {}
    for a in coco['annotations']:
        kinds.setdefault(a['image_id'], []).append(a['category_id'])
    config = osp.join(REPO, 'configs', 'omnishapes', 'omnisegnet_tiny_2k_omnishapes_all.py')
    inferencer = OmniRISInferencer(config, None, device='cpu')  # untrained: the rules, not the figures
    ex = tool.Examples(ann_file, osp.join(omnishapes, 'images'))
    drawn = tool.panels(inferencer, ex)
    assert len(drawn) == 5
    (c1, clicks, s1), (_, box, s2), (_, scribble, _), (_, kshot, _), (c5, negative, s5) = drawn
    # 1: the first image (in id order) with a kind shown twice; a positive first click on that shape
    first = min(i for i, ks in kinds.items() if any(ks.count(k) >= 2 for k in ks))
    assert clicks['inputs']['points'][0][2] == 1 and len(clicks['inputs']['points']) in (1, 2)
    img = next(i for i in coco['images'] if i['id'] == first)
    assert clicks['inputs']['image'].endswith(img['file_name'])
    # the reported IoU is the answer's against that shape's mask, computed here with pycocotools
    ann = next(a for a in coco['annotations'] if a['image_id'] == first and kinds[first].count(a['category_id']) >= 2)
    rle = mask_utils.frPyObjects(ann['segmentation'], img['height'], img['width'])
    gt = mask_utils.decode(mask_utils.merge(rle) if isinstance(rle, list) else rle) > 0
    pred = clicks['union_mask']
    assert s1 == pytest.approx((pred & gt).sum() / max(1, (pred | gt).sum()))
    # 2: the tight box of the next image's first shape; 4: three exemplars; 5: a positive and a negative one
    x0, y0, x1, y1 = box['inputs']['target_box']
    assert x1 > x0 and y1 > y0 and 0 <= s2 <= 1
    assert scribble['inputs']['target_scribble'].any()
    assert len(kshot['inputs']['visual_prompts']) == 3
    assert all(p['image'] != kshot['inputs']['image'] for p in kshot['inputs']['visual_prompts'])
    assert [bool(p.get('negative')) for p in negative['inputs']['visual_prompts']] == [False, True]
    assert 'not like that' in c5 and 0 <= s5 <= 1 and 'after 1' in c1
    # the stacked picture: as wide as the widest panel, each under a caption bar
    pictures = [np.zeros((40, w, 3), np.uint8) for w in (50, 80)]
    out = tool.stack(pictures, ['a', 'b'], pad=8)
    assert out.shape == (28 + 40 + 8 + 28 + 40, 80, 3)
    assert (out[28:68, 50:] == 255).all() and (out[28:68, :50] == 0).all()
