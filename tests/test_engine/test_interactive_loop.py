"""InteractiveTestLoop places the clicks of the NoC protocol; InteractiveSegMetric scores them."""

import os.path as osp
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.structures import PixelData
from scipy.ndimage import distance_transform_edt
from torch.utils.data import DataLoader

from omniris_mm.datasets import CocoTargetPromptDataset, omni_collate
from omniris_mm.engine import InteractiveTestLoop
from omniris_mm.evaluation import InteractiveSegMetric, clicks_to_reach

# No resizing: the references (the target itself) and the ground truth share their pixels.
PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadVisualPrompts'),
    dict(type='LoadOmniAnnotations'),
    dict(type='SynthesizePromptMaps', target_prompt_probs=dict(click=1.0), num_clicks=(1, 1)),
    dict(type='PackOmniInputs'),
]
HOLE = 12


def centre(mask):
    """The pixel farthest from the region's border (the image border counting), raster-first."""
    dist = distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(x), int(y)


def dots(prompt_map):
    _, _, _, cents = cv2.connectedComponentsWithStats(prompt_map.astype(np.uint8))
    return [(int(round(x)), int(round(y))) for x, y in cents[1:]]


class HoleModel:
    """Answers the ground truth with a HOLE x HOLE hole at the first click until it has a second
    click, then the ground truth; records the clicks it was given."""

    def __init__(self):
        self.seen = []

    def eval(self):
        return self

    def test_step(self, batch):
        preds = []
        for sample in batch['data_samples']:
            types = [t for t in sample.prompt_types if t != 'text']
            clicks = {t: [c for m, tt in zip(sample.prompt_maps, types) if tt == t for c in dots(m[0].numpy())]
                      for t in ('click', 'neg_click')}  # fmt: skip
            self.seen.append((sample.img_path, clicks))
            gt = sample.gt_sem_seg.sem_seg[0].numpy() == 1
            answer = gt.copy()
            if len(clicks['click']) + len(clicks['neg_click']) < 2:
                x, y = clicks['click'][0]
                answer[y : y + HOLE, x : x + HOLE] = False
            pred = sample.clone()
            pred.pred_sem_seg = PixelData(sem_seg=torch.from_numpy(answer[None]).to(torch.uint8))
            preds.append(pred)
        return preds


def _loop(root, max_clicks=20, stop_iou=0.9, prompt_type='click'):
    ds = CocoTargetPromptDataset(
        ann_file=osp.join(root, 'instances_test.json'),
        data_prefix=dict(img_path=osp.join(root, 'images')),
        prompt_type=prompt_type,
        min_area=400,
        pipeline=PIPELINE,
        test_mode=True,
    )
    loader = DataLoader(ds, batch_size=3, collate_fn=omni_collate)
    model = HoleModel()
    runner = SimpleNamespace(model=model, visualizer=SimpleNamespace(), call_hook=lambda *a, **k: None)
    loop = InteractiveTestLoop(
        runner, loader, Evaluator([InteractiveSegMetric()]), max_clicks=max_clicks, stop_iou=stop_iou
    )
    return loop, ds, model


def test_clicks_follow_the_largest_error_region_and_noc_counts_them(omnishapes):
    loop, ds, model = _loop(omnishapes)
    metrics = loop.run()
    # Independently: click 1 at the object's centre; the answer misses the HOLE x HOLE block there,
    # so click 2 is a positive click at the block's centre; then the answer is exact.
    ious, expected_seen = [], []
    for i in range(len(ds)):
        sample = ds[i]['data_samples']
        gt = sample.gt_sem_seg.sem_seg[0].numpy() == 1
        x, y = centre(gt)
        hole = np.zeros_like(gt)
        hole[y : y + HOLE, x : x + HOLE] = True
        missed = gt & hole
        iou1 = (gt.sum() - missed.sum()) / gt.sum()
        expected_seen.append((sample.img_path, {'click': [(x, y)], 'neg_click': []}))
        if iou1 < 0.9:
            expected_seen.append((sample.img_path, {'click': [(x, y), centre(missed)], 'neg_click': []}))
        ious.append(iou1)
    assert sorted(model.seen, key=str) == sorted(expected_seen, key=str)
    assert any(i < 0.85 for i in ious) and any(i >= 0.9 for i in ious)  # both cases occur
    assert metrics['mIoU@1'] == pytest.approx(100 * np.mean(ious))
    assert metrics['NoC@85'] == pytest.approx(np.mean([1 if i >= 0.85 else 2 for i in ious]))
    assert metrics['NoC@90'] == pytest.approx(np.mean([1 if i >= 0.9 else 2 for i in ious]))
    assert metrics['NoF@90'] == 0


def test_an_object_never_reached_counts_max_clicks():
    assert clicks_to_reach([0.5, 0.8, 0.86], 0.85, 20) == 3
    assert clicks_to_reach([0.5, 0.8, 0.84], 0.85, 20) == 20
    metric = InteractiveSegMetric()
    metric.results = [dict(ious=[0.5, 0.95], max_clicks=20), dict(ious=[0.6, 0.7, 0.8], max_clicks=3)]
    out = metric.compute_metrics(metric.results)
    assert out['mIoU@1'] == pytest.approx(55.0)
    assert out['NoC@90'] == pytest.approx((2 + 3) / 2) and out['NoF@90'] == 1
    assert out['NoC@85'] == pytest.approx((2 + 3) / 2) and out['NoF@85'] == 1


def test_a_dataset_without_clicks_is_refused(omnishapes):
    loop, _, _ = _loop(omnishapes, prompt_type='target_box')
    with pytest.raises(ValueError, match='has no clicks on the target'):
        loop.run()


def test_the_omnishapes_configs_run_clicks_and_boxes_through_the_tiny_model(omnishapes, tmp_path):
    from conftest import REPO
    from mmengine.config import Config
    from mmengine.runner import Runner

    for name, keys in (
        ('interactive_omnishapes', ('mIoU@1', 'NoC@85', 'NoC@90')),
        ('target_box_omnishapes', ('gIoU',)),
    ):
        cfg = Config.fromfile(osp.join(REPO, 'configs', 'omnishapes', f'{name}.py'))
        cfg.test_dataloader.dataset.data_root = omnishapes
        cfg.test_dataloader.update(num_workers=0, persistent_workers=False)
        if name == 'interactive_omnishapes':
            cfg.test_cfg.max_clicks = 2
        cfg.work_dir = str(tmp_path / name)
        cfg.load_from = None
        runner = Runner.from_cfg(cfg)
        metrics = runner.test()
        assert all(k in metrics for k in keys), metrics
        if name == 'interactive_omnishapes':
            assert 1 <= metrics['NoC@90'] <= 2 and metrics['skipped'] == 0
        else:
            assert 'target/target_box/gIoU' in metrics
