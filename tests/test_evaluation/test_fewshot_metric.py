import os.path as osp

import numpy as np
import pytest
import torch
from conftest import shared
from PIL import Image

from omniris_mm.evaluation import FewShotSegMetric


def episode(pred, gt, cat):
    return dict(
        pred_sem_seg=dict(sem_seg=torch.as_tensor(pred)[None]),
        gt_sem_seg=dict(sem_seg=torch.as_tensor(gt)[None]),
        category_id=cat,
    )


def test_accumulated_per_class_iou_and_fb_iou():
    gt1 = np.array([[1, 1, 0, 255]])
    pred1 = np.array([[1, 0, 1, 1]])  # fg: I=1, U=3 (void ignored); bg: I=0, U=2
    gt2 = np.array([[1, 0, 0, 0]])
    pred2 = np.array([[1, 0, 0, 0]])  # fg: I=1, U=1; bg: I=3, U=3
    gt3 = np.array([[0, 1, 1, 1]])
    pred3 = np.array([[0, 1, 1, 0]])  # class 2 fg: I=2, U=3; bg: I=1, U=2
    metric = FewShotSegMetric()
    metric.process({}, [episode(pred1, gt1, 1), episode(pred2, gt2, 1), episode(pred3, gt3, 2)])
    m = metric.evaluate(3)
    assert m['IoU/1'] == pytest.approx(100 * 2 / 4)  # accumulated, not the mean of 1/3 and 1
    assert m['IoU/2'] == pytest.approx(100 * 2 / 3)
    assert m['mIoU'] == pytest.approx((50 + 200 / 3) / 2)
    fg, bg = 4 / 7, 4 / 7
    assert m['FB-IoU'] == pytest.approx(100 * (fg + bg) / 2)


def test_on_real_voc_masks():
    root = shared('voc2012_sample')
    target = np.array(Image.open(osp.join(root, '1_target.png')))
    classes = [c for c in np.unique(target) if c not in (0, 255)]
    assert classes
    cat = int(classes[0])
    gt = np.where(target == 255, 255, (target == cat).astype(np.uint8))
    metric = FewShotSegMetric()
    metric.process({}, [episode((target == cat).astype(np.uint8), gt, cat)])
    assert metric.evaluate(1)['mIoU'] == pytest.approx(100.0)
    shifted = np.roll((target == cat).astype(np.uint8), 7, axis=1)
    metric = FewShotSegMetric()
    metric.process({}, [episode(shifted, gt, cat)])
    valid = gt != 255
    inter = ((shifted == 1) & (gt == 1) & valid).sum()
    union = (((shifted == 1) | (gt == 1)) & valid).sum()
    assert metric.evaluate(1)['mIoU'] == pytest.approx(100 * inter / union)
