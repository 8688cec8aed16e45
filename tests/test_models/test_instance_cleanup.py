"""AdaptiveMaskHead's test-time instance clean-up (test_cfg instance_in_union, instance_nms)."""

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config

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


def one_object_head(**test_cfg):
    """The tiny model's head (configs/_base_/models/omnisegnet_tiny.py), with ``test_cfg``."""
    cfg = Config.fromfile('configs/_base_/models/omnisegnet_tiny.py').model.head
    return MODELS.build(dict(cfg, test_cfg=test_cfg))


def one_object_outputs():
    """Three queries over mask features whose channel 0 is +10 on A and -10 elsewhere, channel 1 the
    same for B: query 0 draws A (objectness 0.60), query 1 draws B (0.70), query 2 nothing (0.65);
    the union map answers A | B."""
    feats = torch.stack([A.float() * 20 - 10, B.float() * 20 - 10])
    embed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    p = torch.tensor([0.60, 0.70, 0.65])
    union = UNION.float() * 20 - 10
    return dict(
        nt_logits=torch.tensor([[5.0, -5.0]]),
        target_mask=torch.stack([-union, union])[None],
        objectness=torch.stack([p.log(), (1 - p).log()], -1)[None],
        instance_embed=embed[None],
        mask_features=feats[None],
    )


META = dict(batch_input_shape=(H, W), img_shape=(H, W), ori_shape=(H, W))


@pytest.mark.parametrize('instance_thr', [0.5, 0.9])
def test_one_object_prompts_answer_the_best_scored_instance(instance_thr):
    head = one_object_head(instance_thr=instance_thr)  # the default one_object_types: the target prompts
    (res,) = head.postprocess(one_object_outputs(), [dict(META, prompt_types=['text', 'click'])])
    # Query 1 (B) scores highest: it is the answer, union and instance, whatever instance_thr.
    assert torch.equal(res['sem_seg'][0].bool(), B)
    assert len(res['masks']) == 1 and torch.equal(res['masks'][0], B)
    assert res['scores'].tolist() == pytest.approx([0.70])
    # A referring prompt keeps the union answer, A | B, and the instances above instance_thr: A and B
    # at 0.5 (query 2's empty mask is dropped by the clean-up), none at 0.9.
    (ref,) = head.postprocess(one_object_outputs(), [dict(META, prompt_types=['text', 'box'])])
    assert torch.equal(ref['sem_seg'][0].bool(), UNION)
    assert len(ref['masks']) == (2 if instance_thr == 0.5 else 0)


def test_one_object_types_empty_keeps_the_union_answer():
    head = one_object_head(one_object_types=())
    (res,) = head.postprocess(one_object_outputs(), [dict(META, prompt_types=['click'])])
    assert torch.equal(res['sem_seg'][0].bool(), UNION)
    assert sorted(res['scores'].tolist()) == pytest.approx([0.60, 0.70])


def test_a_no_target_answer_clears_a_one_object_row():
    outputs = dict(one_object_outputs(), nt_logits=torch.tensor([[-5.0, 5.0]]))  # "no target" at 1 - 4.5e-5
    (res,) = one_object_head().postprocess(outputs, [dict(META, prompt_types=['click'])])
    assert res['no_target'] and not res['sem_seg'].any() and len(res['masks']) == 0
    # With empty_on_no_target off the row still answers its best instance, B.
    (kept,) = one_object_head(empty_on_no_target=False).postprocess(outputs, [dict(META, prompt_types=['click'])])
    assert kept['no_target'] and torch.equal(kept['sem_seg'][0].bool(), B) and len(kept['masks']) == 1


def instance_outputs(masks, scores):
    """Outputs whose query k draws ``masks[k]`` (mask features: channel k is +10 on it, -10 elsewhere;
    instance embedding k the k-th unit vector) with objectness ``scores[k]``; the union map answers
    every mask together."""
    feats = torch.stack([m.float() * 20 - 10 for m in masks])
    p = torch.tensor(scores)
    union = torch.stack(masks).any(0).float() * 20 - 10
    return dict(
        nt_logits=torch.tensor([[5.0, -5.0]]),
        target_mask=torch.stack([-union, union])[None],
        objectness=torch.stack([p.log(), (1 - p).log()], -1)[None],
        instance_embed=torch.eye(len(masks))[None],
        mask_features=feats[None],
    )


def prompt_maps(positive=None, negative=None):
    """(1, 2, H, W) positive / negative maps of the prompts on the target."""
    empty = torch.zeros(H, W, dtype=torch.bool)
    return torch.stack([positive if positive is not None else empty, negative if negative is not None else empty])[
        None
    ].float()


def answer(head, outputs, types, maps):
    (res,) = head.postprocess(outputs, [dict(META, prompt_types=types)], target_maps=maps)
    assert len(res['masks']) == 1 and torch.equal(res['sem_seg'][0].bool(), res['masks'][0])
    return res['masks'][0], res['scores'].item()


def test_one_object_rows_answer_the_instance_the_prompts_point_at():
    head, outputs = one_object_head(), one_object_outputs()  # A at 0.60, B at 0.70, nothing at 0.65
    click_a = box(3, 3, 2, 2)  # a click's disk inside A only
    mask, score = answer(head, outputs, ['click'], prompt_maps(click_a))
    assert torch.equal(mask, A) and score == pytest.approx(0.60)  # not B, the better-scored one
    # A box around A, one pixel wider on each side: IoU 64 / 100 with A, 0 with B.
    mask, _ = answer(head, outputs, ['target_box'], prompt_maps(box(0, 0, 10, 10)))
    assert torch.equal(mask, A)
    # A scribble inside B: B.
    assert torch.equal(answer(head, outputs, ['target_scribble'], prompt_maps(box(12, 11, 1, 6)))[0], B)
    # The best-scored instance with one_object_select='score', or without the maps.
    assert torch.equal(
        answer(one_object_head(one_object_select='score'), outputs, ['click'], prompt_maps(click_a))[0], B
    )
    assert torch.equal(answer(head, outputs, ['click'], None)[0], B)


def test_ties_go_by_score_and_a_negative_click_rules_an_instance_out():
    both = A | B
    outputs = instance_outputs([A, both, B], [0.60, 0.80, 0.70])
    head = one_object_head()
    click_a, click_b = box(3, 3, 2, 2), box(13, 13, 2, 2)
    # A and A | B both cover the click (agreement 1): the better-scored, A | B.
    assert torch.equal(answer(head, outputs, ['click'], prompt_maps(click_a))[0], both)
    # A negative click on B: A | B covers it (agreement 1 * (1 - 1) = 0), A does not (1 * 1).
    mask, score = answer(head, outputs, ['click', 'neg_click'], prompt_maps(click_a, click_b))
    assert torch.equal(mask, A) and score == pytest.approx(0.60)
    # Half of the negative disk in A | B only (agreement 0.5), within agreement_tol=0.6 of A's 1: by
    # score A | B again; within the default 0.05: A.
    half_b = box(13, 9, 2, 2)  # columns 9-10: column 10 is B's
    assert torch.equal(answer(head, outputs, ['click', 'neg_click'], prompt_maps(click_a, half_b))[0], A)
    loose = one_object_head(agreement_tol=0.6)
    assert torch.equal(answer(loose, outputs, ['click', 'neg_click'], prompt_maps(click_a, half_b))[0], both)


def test_one_object_select_is_checked():
    with pytest.raises(ValueError, match="one_object_select must be 'score' or 'prompts', got 'best'"):
        one_object_head(one_object_select='best')
    with pytest.raises(ValueError, match='agreement_tol must be >= 0, got -0.1'):
        one_object_head(agreement_tol=-0.1)


def test_the_agreement_covers_every_query():
    # 20 queries (the agreement is computed 16 at a time): A is query 17, every other one draws B.
    masks = [A if k == 17 else B for k in range(20)]
    outputs = instance_outputs(masks, [0.5 if k == 17 else 0.9 for k in range(20)])
    mask, score = answer(one_object_head(), outputs, ['click'], prompt_maps(box(3, 3, 2, 2)))
    assert torch.equal(mask, A) and score == pytest.approx(0.5)
