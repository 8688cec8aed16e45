"""InstanceCriterion matches and computes its mask losses on sampled points, the matching in float32:
float16 masks with large logits, which overflow mmdet's full-mask match costs, match as in float32."""

import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import TASK_UTILS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData

import omniris_mm  # noqa: F401
from omniris_mm.models.losses import InstanceCriterion

H = W = 480  # the padded input; masks at stride 4: 120 x 120 = 14,400 logits each
BOXES = [(0, 0, 240, 200), (240, 100, 480, 480), (40, 300, 200, 460)]  # x0, y0, x1, y1 at the input size
LOGIT = 30.0


def gt_masks():
    gt = torch.zeros(len(BOXES), H, W)
    for k, (x0, y0, x1, y1) in enumerate(BOXES):
        gt[k, y0:y1, x0:x1] = 1
    return gt


def predictions(owner):
    """Query q predicts instance owner[q] (+/-LOGIT inside/outside), or, where owner[q] is None,
    a mask of its own that overlaps none of them well."""
    masks = torch.full((len(owner), H // 4, W // 4), -LOGIT)
    for q, k in enumerate(owner):
        if k is None:
            masks[q, 50:60, 50:60] = LOGIT
        else:
            x0, y0, x1, y1 = (v // 4 for v in BOXES[k])
            masks[q, y0:y1, x0:x1] = LOGIT
    scores = torch.tensor([[2.0, -2.0]] * len(owner))
    return scores, masks


def fp16_autocast():
    """AMP as on a GPU (float16 autocast), here on the CPU."""
    return torch.autocast('cpu', dtype=torch.float16)


def test_stock_full_mask_costs_overflow_under_float16_autocast():
    """What the fix avoids: mmdet's match cost summed over a full stride-4 mask under AMP."""
    _, masks = predictions([0, None])
    gt = F.interpolate(gt_masks()[None], (H // 4, W // 4))[0]
    cost = TASK_UTILS.build(dict(type='CrossEntropyLossCost', weight=5.0, use_sigmoid=True))
    full = cost(InstanceData(masks=masks.flatten(1)), InstanceData(masks=gt.flatten(1)))
    with fp16_autocast():
        half = cost(InstanceData(masks=masks.half().flatten(1)), InstanceData(masks=gt.flatten(1)))
    assert torch.isfinite(full).all() and not torch.isfinite(half).all()


def test_matching_in_float16_is_finite_and_equals_float32():
    criterion = InstanceCriterion()
    owner = [None, 2, None, 0, 1, None]  # expected: query 1 -> instance 2, 3 -> 0, 4 -> 1
    expected = torch.tensor([0, 3, 0, 1, 2, 0])
    scores, masks = predictions(owner)
    gt = gt_masks()
    torch.manual_seed(0)
    with fp16_autocast():
        in_half = criterion.match(scores.half(), masks.half(), gt.half())
    torch.manual_seed(0)
    in_float = criterion.match(scores, masks, gt)
    assert torch.equal(in_half, expected) and torch.equal(in_float, expected)


def sample(gt):
    s = DetDataSample(metainfo=dict(batch_input_shape=(H, W)))
    s.gt_instances = InstanceData(masks=BitmapMasks(gt.numpy().astype('uint8'), H, W))
    return s


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_point_losses_equal_their_definition(dtype, monkeypatch):
    """A constant logit c on every pixel and a full ground-truth mask: every sampled point has
    the same loss, so the point losses equal closed forms. The loss points are put at pixel
    centres (at the border, bilinear sampling would mix in the zero padding)."""
    c, q, ch, points = 0.7, 3, 4, 500
    criterion = InstanceCriterion(num_points=points)
    drawn = {}

    def centres(pred, labels, num_points, oversample_ratio, importance_sample_ratio):
        drawn.update(n=num_points, ratios=(oversample_ratio, importance_sample_ratio))
        idx = torch.randint(0, H // 4, (len(pred), num_points, 2))
        return (idx.float() + 0.5) / (H // 4)

    monkeypatch.setattr(
        'omniris_mm.models.losses.instance_criterion.get_uncertain_point_coords_with_randomness', centres
    )
    full = torch.ones(1, H, W)
    mask_features = torch.zeros(1, ch, H // 4, W // 4)
    mask_features[:, 0] = 1.0
    embed = torch.zeros(1, q, ch)
    embed[0, :, 0] = c  # every query's mask logit is c everywhere
    objectness = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]])
    outputs = dict(
        objectness=objectness.to(dtype), instance_embed=embed.to(dtype), mask_features=mask_features.to(dtype)
    )
    with fp16_autocast():
        losses = criterion(outputs, [sample(full)])
    s = 1 / (1 + math.exp(-c))
    expected_mask = 5.0 * math.log1p(math.exp(-c))  # BCE(c, 1) = softplus(-c)
    expected_dice = 5.0 * (1 - (2 * points * s + 1.0) / (points * s + points + 1.0))  # naive dice, eps 1
    # Classification: one query matched (ties broken by the assigner; all queries have equal masks,
    # query 0 has the lowest classification cost), weights 1.0 (object) and 0.1 (no object).
    logp = torch.log_softmax(objectness[0].double(), -1)
    expected_cls = 2.0 * -(logp[0, 0] + 0.1 * logp[1, 1] + 0.1 * logp[2, 1]) / (1.0 + 0.1 + 0.1)
    assert drawn == dict(n=points, ratios=(3.0, 0.75))
    assert float(losses['loss_inst_mask']) == pytest.approx(expected_mask, rel=1e-3)
    assert float(losses['loss_inst_dice']) == pytest.approx(expected_dice, rel=1e-3)
    assert float(losses['loss_inst_cls']) == pytest.approx(
        float(expected_cls), rel=1e-2 if dtype == torch.float16 else 1e-5
    )


def test_training_points_depend_on_seed_and_iteration_not_on_the_random_state():
    """What keeps --resume exact (a resumed run has the seed and the iteration, not the random
    state) and N processes equal to one (a sample's points do not depend on its rank)."""
    from mmengine.logging import MessageHub

    hub = MessageHub.get_instance('test_point_rng')
    hub.update_info('loop_stage', 'train')

    def points(iteration, advance, sample=(7, 'record 7')):
        torch.manual_seed(0)
        torch.rand(advance)  # whatever else drew from the global state before
        hub.update_info('iter', iteration)
        with InstanceCriterion.point_rng('cpu', sample):
            drawn = torch.rand(4)
        return drawn, torch.rand(1)

    (a, after_a), (b, _) = points(5, 0), points(5, 1000)
    # The points are torch.manual_seed's stream for the seed of (initial seed, iteration, sample): the
    # forked generators are seeded alone, the draws are what seeding every device gives.
    import hashlib

    key = f'0-5-{(7, "record 7")}'.encode()  # torch.manual_seed(0) in points()
    torch.manual_seed(int.from_bytes(hashlib.sha256(key).digest()[:8], 'little') % 2**63)
    assert torch.equal(a, torch.rand(4))
    assert torch.equal(a, b) and not torch.equal(a, points(6, 0)[0])
    assert not torch.equal(a, points(5, 0, sample=(8, 'record 8'))[0])
    torch.manual_seed(0)
    assert torch.equal(after_a, torch.rand(1))  # the global state is left as it was
    hub.update_info('loop_stage', 'test')
    torch.manual_seed(3)
    expected = torch.rand(2)
    torch.manual_seed(3)
    with InstanceCriterion.point_rng('cpu', None):  # outside training: the global state as it is
        assert torch.equal(torch.rand(2), expected)
