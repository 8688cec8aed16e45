"""The instance figures of OmniRISMetric: count accuracy, mask AP / AP50, pixels outside the union.

The expected values are worked out by hand from COCO's definition of AP (greedy matching by
score at each IoU threshold 0.50:0.05:0.95, 101-point interpolated precision) on masks drawn here.
"""

import math

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData, PixelData

from omniris_mm.evaluation import OmniRISMetric

H, W = 40, 60


def box(y0, x0, h, w):
    m = torch.zeros(H, W, dtype=torch.bool)
    m[y0 : y0 + h, x0 : x0 + w] = True
    return m


def stack(masks):
    return torch.stack(masks) if masks else torch.zeros(0, H, W, dtype=torch.bool)


def sample(gt, pred, scores, union=None, crowd=(), modality='visual', as_dict=True):
    """A data sample: referred instances ``gt``, predicted instances ``pred`` with ``scores``;
    the union answer is the union of ``gt`` unless given."""
    gt_t = stack(list(gt))
    union = stack(list(gt)).any(0) if union is None else union
    s = DetDataSample(metainfo=dict(prompt_modality=modality, prompt_types=['box'], img_path=f'{modality}.jpg'))
    s.gt_sem_seg = PixelData(sem_seg=gt_t.any(0)[None].to(torch.uint8))
    s.pred_sem_seg = PixelData(sem_seg=union[None].to(torch.uint8))
    s.gt_no_target = s.pred_no_target = not len(gt)
    s.gt_instances = InstanceData(masks=BitmapMasks(gt_t.numpy().astype(np.uint8), H, W))
    if crowd:
        s.ignored_instances = InstanceData(masks=BitmapMasks(stack(list(crowd)).numpy().astype(np.uint8), H, W))
    s.pred_instances = InstanceData(masks=stack(list(pred)), scores=torch.tensor(scores, dtype=torch.float32))
    return s.to_dict() if as_dict else s


def evaluate(samples, **kwargs):
    metric = OmniRISMetric(**kwargs)
    metric.process({}, samples)
    return metric.evaluate(len(samples))


A, B, C = box(0, 0, 10, 10), box(20, 20, 10, 10), box(5, 40, 10, 10)


def test_exact_instances_give_full_scores():
    m = evaluate([sample([A, B], [A, B], [0.9, 0.8]), sample([C], [C], [0.7])])
    assert m['count-acc'] == 100.0
    assert m['mask-AP'] == pytest.approx(100.0) and m['mask-AP50'] == pytest.approx(100.0)
    assert m['outside'] == 0.0


def test_a_top_scored_duplicate_costs_a_quarter_of_the_precision():
    # Ranking: stray (FP), A, B, C (TP): precision 1/2, 2/3, 3/4 at recall 1/3, 2/3, 1;
    # interpolated precision is 3/4 at every recall level, so AP = AP50 = 75.
    stray = box(30, 0, 5, 4)  # 20 pixels, outside the union answer
    m = evaluate([sample([A, B], [stray, A, B], [0.95, 0.9, 0.8]), sample([C], [C], [0.7])])
    assert m['mask-AP'] == pytest.approx(75.0) and m['mask-AP50'] == pytest.approx(75.0)
    assert m['count-acc'] == 50.0  # 3 predicted for 2 referred; 1 for 1
    assert m['outside'] == pytest.approx(100.0 * 20 / (20 + 100 + 100 + 100))
    # The same stray ranked last leaves the precision at 1 up to full recall.
    m = evaluate([sample([A, B], [stray, A, B], [0.1, 0.9, 0.8]), sample([C], [C], [0.7])])
    assert m['mask-AP'] == pytest.approx(100.0)


def test_ap_over_iou_thresholds():
    # An 8 x 9 mask inside the 10 x 10 instance: IoU 0.72, a match at 0.50 ... 0.70 (5 of 10).
    m = evaluate([sample([A], [box(0, 0, 8, 9)], [0.9])])
    assert m['mask-AP50'] == pytest.approx(100.0)
    assert m['mask-AP'] == pytest.approx(50.0)


def test_crowd_regions_are_not_false_positives():
    crowd = box(30, 40, 8, 10)
    preds, scores = [box(30, 40, 8, 10), A, B, C], [0.95, 0.9, 0.8, 0.7]
    with_crowd = evaluate([sample([A, B, C], preds, scores, crowd=[crowd])])
    without = evaluate([sample([A, B, C], preds, scores)])
    assert with_crowd['mask-AP50'] == pytest.approx(100.0)
    assert without['mask-AP50'] == pytest.approx(75.0)


def test_no_target_samples_count_and_their_instances_are_false_positives():
    # No-target sample answering nothing: count right; answering one instance (ranked first): FP.
    quiet = evaluate([sample([A], [A], [0.9]), sample([], [], [], modality='text')])
    assert quiet['count-acc'] == 100.0 and quiet['mask-AP'] == pytest.approx(100.0)
    assert math.isnan(quiet['text/mask-AP']) and quiet['text/count-acc'] == 100.0
    noisy = evaluate([sample([A], [A], [0.9]), sample([], [B], [0.95], union=B, modality='text')])
    # Ranking: FP, TP: precision 1/2 at recall 1.
    assert noisy['mask-AP'] == pytest.approx(50.0) and noisy['count-acc'] == 50.0
    assert noisy['visual/mask-AP'] == pytest.approx(100.0) and noisy['text/count-acc'] == 0.0


def test_breakdown_table_and_data_sample_forms():
    samples = [sample([A, B], [A], [0.9], modality='visual'), sample([C], [C, A], [0.8, 0.3], modality='omni')]
    as_dicts = evaluate(samples)
    as_samples = evaluate(
        [sample([A, B], [A], [0.9], as_dict=False), sample([C], [C, A], [0.8, 0.3], modality='omni', as_dict=False)]
    )
    for key in ('count-acc', 'mask-AP', 'mask-AP50', 'outside'):
        assert as_dicts[key] == pytest.approx(as_samples[key], nan_ok=True)
        assert f'visual/{key}' in as_dicts and f'omni/{key}' in as_dicts and f'visual/box/{key}' in as_dicts
    assert as_dicts['count-acc'] == 0.0
    # Outside the union answer: A is outside the omni sample's answer C (100 of 200 instance pixels).
    assert as_dicts['omni/outside'] == pytest.approx(50.0) and as_dicts['visual/outside'] == 0.0
    assert 'count-acc' not in evaluate(samples, instances=False)


def test_instances_are_scored_at_eval_size():
    big = evaluate([sample([A, B], [A, box(20, 20, 10, 9)], [0.9, 0.8])], eval_size=(20, 30))
    # Halved: B's 10 x 9 prediction becomes 5 x 5 (nearest), identical to the halved B.
    assert big['mask-AP'] == pytest.approx(100.0)
    small = evaluate([sample([A, B], [A, box(20, 20, 10, 9)], [0.9, 0.8])])
    assert small['mask-AP'] < 100.0


def test_mismatched_scores_are_an_error():
    s = sample([A], [A], [0.9])
    s['pred_instances']['scores'] = torch.tensor([0.9, 0.8])
    with pytest.raises(ValueError, match='visual.jpg.*1 masks and 2 scores'):
        evaluate([s])
