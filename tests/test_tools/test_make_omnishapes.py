import filecmp
import json
import os.path as osp
import sys

import pytest
from conftest import REPO
from make_omnishapes import build
from mmengine.config import Config

from omniris_mm.datasets import OmniRefDataset

sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
SPLITS = [f'{k}-{s}' for k in ('text', 'visual', 'omni') for s in ('train', 'test')]


def test_deterministic_by_seed(tmp_path):
    a, b, c = (build(str(tmp_path / n), num_train=6, num_test=2, seed=s) for n, s in (('a', 3), ('b', 3), ('c', 4)))
    assert a == b
    for name in ('OmniRef.json', 'instances.json', 'SuppImageAnns.json', 'images/omnishapes_000001.png'):
        assert filecmp.cmp(tmp_path / 'a' / name, tmp_path / 'b' / name, shallow=False), name
    assert not filecmp.cmp(tmp_path / 'a' / 'OmniRef.json', tmp_path / 'c' / 'OmniRef.json', shallow=False)


def test_layout_splits_and_settings(omnishapes):
    with open(osp.join(omnishapes, 'OmniRef.json')) as f:
        refs = json.load(f)
    assert sorted(refs) == sorted(SPLITS)
    train_imgs = {r['image_id'] for k in SPLITS if k.endswith('train') for r in refs[k]}
    test_imgs = {r['image_id'] for k in SPLITS if k.endswith('test') for r in refs[k]}
    assert train_imgs and test_imgs and not train_imgs & test_imgs
    texts = [s['sent'] for r in refs['text-train'] for s in r['sentences']]
    assert any(t.startswith('all ') for t in texts) and any(' on the left' in t for t in texts)
    settings = set()
    for split in SPLITS:
        ds = OmniRefDataset(
            data_root=omnishapes, split=split, data_prefix=dict(img_path='images/'), pipeline=[], test_mode=True
        )
        assert len(ds) > 0 and not ds.skipped
        settings |= {ds.get_data_info(i)['setting'] for i in range(len(ds))}
    assert settings == {'1v1', '1vN', 'Nv1', 'NvN', 'no-target'}


def test_oracle_on_the_omnishapes_config(omnishapes):
    from eval_oracle import evaluate_oracle

    cfg = Config.fromfile(osp.join(REPO, 'configs', 'omnishapes', 'oracle_omnishapes.py'))
    for ds in cfg.test_dataloader.dataset.datasets:
        ds.data_root = omnishapes
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    metrics = evaluate_oracle(cfg)
    for key in (
        'cIoU',
        'gIoU',
        'N-acc',
        'T-acc',
        'text/gIoU',
        'visual/box/gIoU',
        'visual/scribble/gIoU',
        'omni/gIoU',
        'Nv1/gIoU',
        'no-target/N-acc',
    ):
        assert metrics[key] == pytest.approx(100.0), key


def test_each_shape_has_its_colour_and_no_target_texts_name_a_real_category(omnishapes):
    """A category is a shape drawn in its own colour (what the quickstart's tiny model can learn in minutes);
    a no-target text names a category that other images have, so the text alone does not give it away."""
    import cv2
    import numpy as np
    import pycocotools.mask as mask_utils
    from make_omnishapes import COLOR_OF, COLORS, SHAPES

    with open(osp.join(omnishapes, 'OmniRef.json')) as f:
        refs = json.load(f)
    with open(osp.join(omnishapes, 'instances.json')) as f:
        coco = json.load(f)['text-train']
    for ann in coco['annotations'][:40]:
        info = next(i for i in coco['images'] if i['id'] == ann['image_id'])
        img = cv2.imread(osp.join(omnishapes, 'images', info['file_name']))[..., ::-1]
        seg = ann['segmentation']  # polygons (squares, triangles) or RLE (circles)
        rle = (
            mask_utils.merge(mask_utils.frPyObjects(seg, info['height'], info['width']))
            if isinstance(seg, list)
            else seg
        )
        mean_rgb = img[mask_utils.decode(rle).astype(bool)].mean(0)
        nearest = min(COLORS, key=lambda c: np.abs(mean_rgb - COLORS[c]).sum())
        assert nearest == COLOR_OF[ann['category_id']], (ann['id'], mean_rgb)
    cats_in = {}
    for ann in coco['annotations']:
        cats_in.setdefault(ann['image_id'], set()).add(ann['category_id'])
    names = {f'the {COLOR_OF[c]} {s}': c for c, s in SHAPES.items()}
    no_target = [r for r in refs['text-train'] if r['ann_id'] == [-1]]
    assert no_target
    for r in no_target:
        cat = names[r['sentences'][0]['sent']]
        assert cat not in cats_in[r['image_id']]
        assert any(cat in cats for i, cats in cats_in.items() if i != r['image_id'])
