"""projects/refcoco_omniris_metric: OmniRIS metrics on mmdet's stock RefCocoDataset and pipeline, over a tiny
RefCOCO-format set built from the real COCO sample images, with predictions whose scores are known exactly."""

import json
import os.path as osp
import pickle
import sys

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from conftest import REPO, shared
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.structures import InstanceData

CONFIG = osp.join(REPO, 'projects', 'refcoco_omniris_metric', 'configs', 'refcoco_val_omniris-metric.py')


def ref(ref_id, image_id, ann_id, split, *sentences):
    return dict(
        ref_id=ref_id,
        image_id=image_id,
        ann_id=ann_id,
        split=split,
        sentences=[dict(raw=s, sent=s.lower(), sent_id=100 * ref_id + i) for i, s in enumerate(sentences)],
    )


# val: the ball in 142238; a truck and a horse in 439180 (two expressions in one image). testA is left out.
REFS = [
    ref(1, 142238, 14, 'val', 'The ball in the air'),
    ref(2, 439180, 33, 'val', 'Red truck', 'truck on the right'),
    ref(3, 439180, 34, 'val', 'horse in front'),
    ref(4, 142238, 0, 'testA', 'player on the left'),
]


@pytest.fixture(scope='module')
def stock(tmp_path_factory):
    """The project config (mmdet's stock RefCOCO val pipeline) over the tiny set: (config, batches, GT masks)."""
    root = shared('coco_val2017_sample')
    data_root = tmp_path_factory.mktemp('refcoco')
    with open(data_root / 'refs(unc).p', 'wb') as f:
        pickle.dump(REFS, f)
    if REPO not in sys.path:  # as tools/test.py does: `projects` becomes importable
        sys.path.insert(0, REPO)
    cfg = Config.fromfile(CONFIG)
    cfg.val_dataloader.update(num_workers=0, persistent_workers=False, batch_size=2)
    cfg.val_dataloader.dataset.update(
        data_root=str(data_root),
        ann_file=osp.join(root, 'instances.json'),
        split_file='refs(unc).p',
        data_prefix=dict(img_path=root),
    )
    init_default_scope('mmdet')
    batches = list(Runner.build_dataloader(cfg.val_dataloader))
    with open(osp.join(root, 'instances.json')) as f:
        anns = {a['id']: a for a in json.load(f)['annotations']}
    gt = {a: mask_utils.decode(anns[a]['segmentation']).astype(bool) for a in (14, 33, 34)}
    return cfg, batches, gt


def samples_of(batches):
    return [s for b in batches for s in b['data_samples']]


def score(cfg, batches, predict) -> dict:
    """Run mmengine's Evaluator built from the config as ValLoop does: samples reach the metric in their dict
    form, and evaluate() gets the number of data samples (images), not of expressions."""
    evaluator = Evaluator(cfg.val_evaluator)
    for batch in batches:
        for sample in batch['data_samples']:
            masks, flags = predict(sample)
            sample.pred_instances = InstanceData(masks=masks)
            if flags is None:
                sample.pop('pred_no_target', None)
            else:
                sample.pred_no_target = flags
        evaluator.process(batch['data_samples'], batch)
    return evaluator.evaluate(len(samples_of(batches)))


def oracle(sample):
    return sample.gt_masks.to_tensor(torch.bool, 'cpu'), None


def test_the_stock_pipeline_packs_one_sample_per_image_with_one_mask_per_expression(stock):
    _, batches, gt = stock
    by_image = {s.img_id: s for s in samples_of(batches)}
    assert sorted(by_image) == [142238, 439180]
    # No gt_sem_seg and no no-target flag: what the adapter metric has to make up for.
    assert all('gt_sem_seg' not in s and 'gt_no_target' not in s for s in by_image.values())
    ball, horses = by_image[142238], by_image[439180]
    assert ball.text == ['the ball in the air'] and horses.text == ['red truck', 'horse in front']  # select_first
    for sample, ann_ids in ((ball, [14]), (horses, [33, 34])):
        assert sample.gt_masks.masks.shape == (len(ann_ids),) + tuple(sample.ori_shape)  # original size
        for mask, ann_id in zip(sample.gt_masks.masks, ann_ids):
            np.testing.assert_array_equal(mask.astype(bool), gt[ann_id])


def test_oracle_empty_and_no_target_answers_give_the_known_scores(stock):
    cfg, batches, gt = stock
    perfect = score(cfg, batches, oracle)
    for key in ('gIoU', 'cIoU', 'Pr@0.7', 'Pr@0.9', 'T-acc', 'text/gIoU', '1v1/cIoU'):
        assert perfect[key] == 100.0, key
    assert np.isnan(perfect['N-acc'])  # RefCOCO has no no-target expression

    empty = score(
        cfg, batches, lambda s: (torch.zeros((len(s.gt_masks),) + tuple(s.ori_shape), dtype=torch.bool), None)
    )
    assert empty['gIoU'] == 0.0 and empty['cIoU'] == 0.0 and empty['Pr@0.7'] == 0.0
    assert empty['T-acc'] == 100.0  # a mask was answered (empty, but no "no target")

    # One no-target answer per expression, in gt_masks order: the truck is answered "no target", the rest exactly.
    flags = {142238: [False], 439180: [True, False]}
    mixed = score(cfg, batches, lambda s: (oracle(s)[0], flags[s.img_id]))
    area = {a: int(m.sum()) for a, m in gt.items()}
    assert mixed['gIoU'] == pytest.approx(200 / 3)  # all three expressions of the two images are counted
    assert mixed['T-acc'] == pytest.approx(200 / 3)
    assert mixed['cIoU'] == pytest.approx(100 * (area[14] + area[34]) / (area[14] + area[33] + area[34]))


def test_a_half_mask_scores_as_counted_by_hand_and_as_mmdets_refseg_metric(stock):
    cfg, batches, gt = stock

    def right_half(sample):
        masks = oracle(sample)[0].clone()
        masks[..., : masks.shape[-1] // 2] = False
        return masks, None

    metrics = score(cfg, batches, right_half)
    inter = {a: int(m[:, m.shape[1] // 2 :].sum()) for a, m in gt.items()}
    union = {a: int(m.sum()) for a, m in gt.items()}
    assert metrics['cIoU'] == pytest.approx(100 * sum(inter.values()) / sum(union.values()))
    assert metrics['gIoU'] == pytest.approx(100 * np.mean([inter[a] / union[a] for a in gt]))
    assert 0 < metrics['gIoU'] < 100  # the case is not degenerate

    refseg = Evaluator(dict(type='RefSegMetric', metric=['cIoU', 'mIoU']))
    for batch in batches:  # the predictions of right_half are still on the samples
        refseg.process(batch['data_samples'], batch)
    stock_metrics = refseg.evaluate(len(samples_of(batches)))
    assert float(stock_metrics['cIoU']) == pytest.approx(metrics['cIoU'])
    assert float(stock_metrics['mIoU']) == pytest.approx(metrics['gIoU'])


def test_mismatched_predictions_fail_clearly(stock):
    cfg, batches, _ = stock
    with pytest.raises(ValueError, match='2 referring expressions but 1 predicted masks'):
        score(cfg, batches, lambda s: (oracle(s)[0][:1], None))
    with pytest.raises(ValueError, match='3 pred_no_target flags'):
        score(cfg, batches, lambda s: (oracle(s)[0], [False] * 3))
