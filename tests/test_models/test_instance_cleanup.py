"""AdaptiveMaskHead's test-time instance clean-up (test_cfg instance_in_union, instance_nms)."""

import pytest
import torch

from omniris_mm.models.heads.adaptive_mask_head import TEST_CFG_DEFAULTS, AdaptiveMaskHead

H, W = 20, 30


def box(y0, x0, h, w):
    m = torch.zeros(H, W, dtype=torch.bool)
    m[y0 : y0 + h, x0 : x0 + w] = True
    return m


def clean(masks, scores, union, **cfg):
    return AdaptiveMaskHead.clean_instances(
        torch.stack(masks), torch.tensor(scores), union, {**TEST_CFG_DEFAULTS, **cfg}
    )


A, B = box(0, 0, 8, 8), box(10, 10, 8, 8)
UNION = A | B


def test_a_duplicate_is_suppressed_and_distinct_instances_kept():
    dup = box(0, 0, 8, 7)  # IoU 56 / 64 with A
    masks, scores = clean([A, dup, B], [0.9, 0.8, 0.7], UNION)
    assert len(masks) == 2
    assert torch.equal(masks[0], A) and torch.equal(masks[1], B)
    # mmdet's Gaussian matrix NMS: the duplicate's score 0.8 * exp(-2 * (56 / 64) ** 2) = 0.173 < 0.5;
    # B overlaps nothing and keeps 0.7.
    assert scores.tolist() == pytest.approx([0.9, 0.7])
    assert len(clean([A, dup, B], [0.9, 0.8, 0.7], UNION, instance_nms=None)[0]) == 3


def test_instances_are_cut_to_the_union_and_strays_dropped():
    half_out = box(10, 10, 8, 12)  # 64 of its 96 pixels inside B: kept, cut to B
    stray = box(0, 20, 8, 8)  # entirely outside the union
    mostly_out = box(0, 6, 8, 8)  # 16 of 64 pixels inside A: dropped (< 0.5)
    masks, scores = clean([half_out, stray, mostly_out], [0.9, 0.8, 0.7], UNION, instance_nms=None)
    assert len(masks) == 1 and torch.equal(masks[0], B) and scores.tolist() == pytest.approx([0.9])
    masks, _ = clean([half_out, stray, mostly_out], [0.9, 0.8, 0.7], UNION, instance_nms=None, instance_min_inside=0.2)
    assert len(masks) == 2 and torch.equal(masks[1], A & mostly_out)
    off = clean([half_out, stray, mostly_out], [0.9, 0.8, 0.7], UNION, instance_nms=None, instance_in_union=False)
    assert torch.equal(off[0][0], half_out) and len(off[0]) == 3


def test_an_empty_union_leaves_no_instance():
    masks, scores = clean([A, B], [0.9, 0.8], torch.zeros(H, W, dtype=torch.bool))
    assert masks.shape == (0, H, W) and scores.shape == (0,)
