import math
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from mmdet.structures import DetDataSample
from mmengine.structures import PixelData

from omniris_mm.evaluation import OmniRISMetric

# SPEC 4 test vector: (gt_nt, pred_nt, |G|, |P|, |P and G|)
VECTOR = [
    (False, False, 4, 4, 2),
    (False, False, 10, 8, 8),
    (False, True, 5, 3, 3),
    (True, True, 0, 2, 0),
    (True, False, 0, 7, 0),
]
EXPECTED = {
    'gIoU': 42.667,
    'cIoU': 35.714,
    'mIoU': 100 * (2 / 6 + 8 / 10 + 0) / 3,  # the targeted samples only; "no target" on a target is IoU 0
    'T-acc': 66.667,
    'N-acc': 50.0,
    'Pr@0.7': 33.333,
    'Pr@0.8': 33.333,
    'Pr@0.9': 0.0,
}


def masks(g, p, i, size=(4, 8)):
    """A prediction and a ground truth with |G| = g, |P| = p and |P and G| = i pixels."""
    gt, pred = torch.zeros(size[0] * size[1], dtype=torch.uint8), torch.zeros(size[0] * size[1], dtype=torch.uint8)
    gt[:g] = 1
    pred[g - i : g - i + p] = 1
    return pred.view(1, *size), gt.view(1, *size)


def as_dicts(vector, **meta):
    out = []
    for gt_nt, pred_nt, g, p, i in vector:
        pred, gt = masks(g, p, i)
        out.append(
            dict(
                pred_sem_seg=dict(sem_seg=pred),
                gt_sem_seg=dict(sem_seg=gt),
                pred_no_target=pred_nt,
                gt_no_target=gt_nt,
                **meta,
            )
        )
    return out


def evaluate(samples, **kwargs):
    metric = OmniRISMetric(**kwargs)
    metric.process({}, samples)
    return metric.evaluate(len(samples))


def test_spec_test_vector_on_plain_dicts():
    metrics = evaluate(as_dicts(VECTOR))
    for key, value in EXPECTED.items():
        assert metrics[key] == pytest.approx(value, abs=1e-3), key


def test_data_samples_and_their_dict_forms_agree():
    samples = []
    for d in as_dicts(VECTOR):
        s = DetDataSample(metainfo=dict(prompt_modality='visual', prompt_types=['box'], setting='1v1'))
        s.pred_sem_seg = PixelData(sem_seg=d['pred_sem_seg']['sem_seg'])
        s.gt_sem_seg = PixelData(sem_seg=d['gt_sem_seg']['sem_seg'])
        s.pred_no_target, s.gt_no_target = d['pred_no_target'], d['gt_no_target']
        samples.append(s)
    a = evaluate(samples)
    b = evaluate([s.to_dict() for s in samples])
    assert a.keys() == b.keys()
    for key in EXPECTED:
        assert a[key] == pytest.approx(EXPECTED[key], abs=1e-3)
        assert a[f'visual/box/{key}'] == pytest.approx(EXPECTED[key], abs=1e-3)
        assert a[f'1v1/{key}'] == pytest.approx(EXPECTED[key], abs=1e-3)


def test_nan_rules():
    only_targeted = evaluate(as_dicts(VECTOR[:2]))
    assert math.isnan(only_targeted['N-acc']) and not math.isnan(only_targeted['T-acc'])
    only_no_target = evaluate(as_dicts([VECTOR[3]]))  # TP: nothing counted in the union
    assert only_no_target['cIoU'] == 100.0 and only_no_target['gIoU'] == 100.0
    assert math.isnan(only_no_target['T-acc']) and math.isnan(only_no_target['Pr@0.7'])


def test_breakdown_keys():
    samples = (
        as_dicts(VECTOR[:2], prompt_modality='text', prompt_types=['text'], setting='1v1')
        + as_dicts(VECTOR[2:3], prompt_modality='visual', prompt_types=['scribble'], setting='1vN')
        + as_dicts(VECTOR[3:], prompt_modality='omni', prompt_types=['text', 'mask'], setting='no-target')
    )
    m = evaluate(samples)
    assert m['text/gIoU'] == pytest.approx(100 * (2 / 6 + 8 / 10) / 2)
    assert m['visual/scribble/gIoU'] == 0.0 and m['visual/scribble/T-acc'] == 0.0
    assert m['omni/mask/N-acc'] == 50.0 and m['no-target/N-acc'] == 50.0
    assert m['1vN/cIoU'] == 0.0
    assert 'text/mask/gIoU' not in m and 'omni/text/gIoU' not in m
    assert set(k for k in m if '/' not in k) == set(EXPECTED) | {'skipped'}
    assert set(evaluate(samples, breakdown=False)) == set(EXPECTED) | {'skipped'}
    assert m['skipped'] == 0.0


def test_miou_and_the_granularity_breakdown():
    # RefCOCOm-style: a part at IoU 2/6, an object at 8/10, a part answered "no target" (IoU 0), and a
    # no-target sample answered right: in gIoU (at 1), not in mIoU.
    samples = (
        as_dicts(VECTOR[:1], granularity='part')
        + as_dicts(VECTOR[1:2], granularity='object')
        + as_dicts(VECTOR[2:3], granularity='part')
        + as_dicts(VECTOR[3:4])
    )
    m = evaluate(samples)
    assert m['gIoU'] == pytest.approx(100 * (2 / 6 + 8 / 10 + 0 + 1) / 4)
    assert m['mIoU'] == pytest.approx(100 * (2 / 6 + 8 / 10 + 0) / 3)
    assert m['part/mIoU'] == pytest.approx(100 * (2 / 6 + 0) / 2)
    assert m['part/cIoU'] == pytest.approx(100 * (2 + 0) / (6 + 5))  # the missed part: I = 0, U = |G|
    assert m['object/mIoU'] == pytest.approx(80.0) and m['object/cIoU'] == pytest.approx(80.0)
    assert not any(k.startswith('None/') for k in m)


def test_k_shots_of_one_type_count_once_and_negatives_have_their_group():
    samples = as_dicts(VECTOR[:1], prompt_modality='visual', prompt_types=['box'] * 3, setting='1v1') + as_dicts(
        VECTOR[1:2], prompt_modality='visual', prompt_types=['box', 'neg_mask'], setting='Nv1'
    )
    m = evaluate(samples)
    # pooled over the two samples once each: (2 + 8) / (6 + 10); three times the first would be (6 + 8) / (18 + 10)
    assert m['visual/box/cIoU'] == pytest.approx(100 * 10 / 16)
    assert m['visual/neg_mask/cIoU'] == pytest.approx(100 * 8 / 10)


def test_metric_keeps_counts_not_masks():
    metric = OmniRISMetric()
    metric.process({}, as_dicts(VECTOR))
    assert all(not any(isinstance(v, (torch.Tensor, np.ndarray)) for v in r.values()) for r in metric.results)


def test_eval_size_scores_at_that_size():
    pred = torch.zeros(1, 10, 20, dtype=torch.uint8)
    gt = torch.zeros(1, 10, 20, dtype=torch.uint8)
    gt[:, :, :10] = 1
    pred[:, :, :6] = 1
    sample = dict(
        pred_sem_seg=dict(sem_seg=pred), gt_sem_seg=dict(sem_seg=gt), pred_no_target=False, gt_no_target=False
    )
    assert evaluate([sample])['cIoU'] == pytest.approx(100 * 6 / 10)  # at 10 x 20: 6 of 10 columns
    # At 4 x 4, nearest resizing keeps columns floor(j * 20 / 4) = 0, 5, 10, 15: the prediction has
    # columns 0 and 5, the ground truth too.
    assert evaluate([sample], eval_size=(4, 4))['cIoU'] == pytest.approx(100.0)
    with pytest.raises(ValueError, match=r'prediction \(10, 5\) and ground truth \(10, 20\) differ in size'):
        evaluate([dict(sample, pred_sem_seg=dict(sem_seg=pred[..., :5]))])


def test_published_protocol_scores_the_input_size_prediction_without_a_round_trip():
    # Original image 9 x 9, network input 6 x 6 (the protocol's eval_size). A one-pixel line in
    # column 1 of the ground truth; nearest resizing to 6 x 6 takes the columns
    # floor(1.5 * j) = 0, 1, 3, 4, 6, 7, so the resized ground truth is column 1.
    gt = torch.zeros(1, 9, 9, dtype=torch.uint8)
    gt[..., 1] = 1
    at_input = torch.zeros(1, 6, 6, dtype=torch.uint8)
    at_input[..., 1] = 1  # the model's answer at the input size
    # The same answer rescaled to the original size (nearest: column j <- floor(2 j / 3), so
    # input column 1 lands on column 2 alone), which eval_size then takes back to 6 x 6:
    # column 2 is not among the columns nearest resizing keeps, so the line is lost.
    at_original = torch.zeros(1, 9, 9, dtype=torch.uint8)
    at_original[..., 2] = 1

    def sample(pred):
        return dict(
            pred_sem_seg=dict(sem_seg=pred), gt_sem_seg=dict(sem_seg=gt), pred_no_target=False, gt_no_target=False
        )

    published = evaluate([sample(at_input)], eval_size=(6, 6))
    assert published['gIoU'] == 100.0 and published['cIoU'] == 100.0
    round_trip = evaluate([sample(at_original)], eval_size=(6, 6))
    assert round_trip['gIoU'] == 0.0 and round_trip['cIoU'] == 0.0
    # At the original size the rescaled answer misses the line as well: 0 of 18 pixels.
    assert evaluate([sample(at_original)])['cIoU'] == 0.0


def test_round_trip_under_eval_size_is_warned_once(monkeypatch):
    from types import SimpleNamespace

    import omniris_mm.evaluation.metrics.omniris_metric as module

    warned = []
    logger = SimpleNamespace(warning=warned.append, info=lambda msg: None)
    monkeypatch.setattr(module, 'MMLogger', SimpleNamespace(get_current_instance=lambda: logger))
    pred = torch.zeros(1, 10, 20, dtype=torch.uint8)
    sample = dict(
        pred_sem_seg=dict(sem_seg=pred), gt_sem_seg=dict(sem_seg=pred), pred_no_target=False, gt_no_target=False
    )
    metric = OmniRISMetric(eval_size=(5, 5))
    metric.process({}, [sample, sample])
    assert len(warned) == 1 and "pred_size='input'" in warned[0] and '(10, 20)' in warned[0]
    metric.process({}, [dict(sample, pred_sem_seg=dict(sem_seg=pred[:, :5, :5]))])  # at eval_size: no warning
    assert len(warned) == 1


def _worker(rank, port, queue):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.distributed.init_process_group('gloo', rank=rank, world_size=2)
    samples = as_dicts(VECTOR)
    metric = OmniRISMetric()
    metric.process({}, samples[rank::2])
    queue.put((rank, metric.evaluate(len(samples))))
    torch.distributed.destroy_process_group()


def test_results_collected_from_two_processes():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    ctx = mp.get_context('spawn')
    queue = ctx.SimpleQueue()
    mp.start_processes(_worker, args=(port, queue), nprocs=2, start_method='spawn')
    results = dict(queue.get() for _ in range(2))
    for rank in (0, 1):
        for key, value in EXPECTED.items():
            assert results[rank][key] == pytest.approx(value, abs=1e-3)
