import contextlib
import hashlib
from typing import Dict, List

import torch
import torch.nn.functional as F
from mmcv.ops import point_sample
from mmdet.models.utils import get_uncertain_point_coords_with_randomness
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.utils import ConfigType, reduce_mean
from mmengine.dist import get_rank
from mmengine.logging import MessageHub
from mmengine.structures import InstanceData
from torch import Tensor, nn


@MODELS.register_module()
class InstanceCriterion(nn.Module):
    """Losses of the instance branch: each referred instance is matched to one
    query (mmdet's ``HungarianAssigner`` with its classification, mask
    cross-entropy and dice match costs, as in Mask2Former); matched queries learn
    "object" and the instance mask, the others "no object". A no-target sample
    has no instance: every query learns "no object".

    Masks are compared on sampled points, as mmdet's ``Mask2FormerHead`` does: the
    matching on ``num_points`` points drawn uniformly (the same points for every
    query and instance of a sample), the mask losses on ``num_points`` points per
    matched mask drawn by mmdet's ``get_uncertain_point_coords_with_randomness``
    (``oversample_ratio``, ``importance_sample_ratio``). Predicted masks (stride 4) and
    ground truth (the padded input size) are read by ``mmcv.ops.point_sample`` at the
    same normalised positions, so the ground truth is never resized.

    The points of a sample in a training step are drawn from a random state seeded by the
    run's seed, the iteration and the sample's index in its dataset (:meth:`point_rng`):
    a run resumed from a checkpoint draws the points an uninterrupted one draws (mmengine
    does not store the random state in its checkpoints), and N processes draw the points
    one process draws for the same samples.

    The matching runs in float32 with autocast off: under float16 the match costs'
    sums over a full mask (14,400 pixels at 480 x 480) pass float16's 65,504 and an
    infinite cost makes the Hungarian assignment fail.
    """

    def __init__(
        self,
        assigner: ConfigType = dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='ClassificationCost', weight=2.0),
                dict(type='CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
                dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0),
            ],
        ),
        loss_cls: ConfigType = dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0, class_weight=[1.0, 0.1]
        ),
        loss_mask: ConfigType = dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=5.0),
        loss_dice: ConfigType = dict(
            type='DiceLoss', use_sigmoid=True, activate=True, naive_dice=True, eps=1.0, loss_weight=5.0
        ),
        num_points: int = 12544,
        oversample_ratio: float = 3.0,
        importance_sample_ratio: float = 0.75,
    ):
        super().__init__()
        self.assigner = TASK_UTILS.build(assigner)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_dice = MODELS.build(loss_dice)
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio

    @staticmethod
    def gt_masks(sample, size, device) -> Tensor:
        """The instance masks of ``sample`` (N, H, W) float at the padded input ``size``."""
        masks = sample.gt_instances.masks
        gt = masks.to_tensor(torch.float, device) if hasattr(masks, 'to_tensor') else masks.float().to(device)
        if len(gt) == 0:
            return gt.new_zeros((0,) + tuple(size))
        if tuple(gt.shape[-2:]) != tuple(size):
            if gt.shape[-2] > size[0] or gt.shape[-1] > size[1]:
                raise ValueError(
                    f'{sample.metainfo.get("img_path", "a sample")}: instance masks of size {tuple(gt.shape[-2:])} '
                    f'exceed the batch input {tuple(size)}'
                )
            gt = F.pad(gt, (0, size[1] - gt.shape[-1], 0, size[0] - gt.shape[-2]))
        return gt

    @staticmethod
    def point_rng(device, sample_key) -> contextlib.AbstractContextManager:
        """While training under a Runner: the global random state forked and seeded by
        (``torch.initial_seed()``, iteration, ``sample_key``) for the points of one sample,
        then restored. Elsewhere (tests, scripts): the global random state as it is."""
        hub = MessageHub.get_current_instance()
        iteration = hub.get_info('iter')
        if iteration is None or hub.get_info('loop_stage') != 'train':
            return contextlib.nullcontext()
        key = f'{torch.initial_seed()}-{iteration}-{sample_key}'.encode()
        seed = int.from_bytes(hashlib.sha256(key).digest()[:8], 'little') % 2**63
        device = torch.device(device)
        devices = [device] if device.type == 'cuda' else []
        stack = contextlib.ExitStack()
        stack.enter_context(torch.random.fork_rng(devices=devices))
        # The forked generators only: torch.manual_seed also queues a lazy seeding of every CUDA,
        # XPU and MTIA device, each formatting a stack trace when the device is not initialised
        # (three per sample per step on a CPU; the same draws either way).
        torch.default_generator.manual_seed(seed)
        if devices:
            with torch.cuda.device(device):
                torch.cuda.manual_seed(seed)
        return stack

    def match(self, scores: Tensor, masks: Tensor, gt: Tensor) -> Tensor:
        """Hungarian assignment of one sample on uniformly sampled points, in float32:
        ``gt_inds`` per query (0 unmatched, k matched to instance k - 1)."""
        with torch.autocast(device_type=scores.device.type, enabled=False):
            coords = torch.rand((1, self.num_points, 2), device=masks.device)
            pred_points = point_sample(masks.detach().float()[:, None], coords.expand(len(masks), -1, -1))[:, 0]
            gt_points = point_sample(gt.float()[:, None], coords.expand(len(gt), -1, -1))[:, 0]
            gt_inst = InstanceData(labels=gt.new_zeros(len(gt), dtype=torch.long), masks=gt_points)
            pred_inst = InstanceData(scores=scores.detach().float(), masks=pred_points)
            return self.assigner.assign(pred_inst, gt_inst).gt_inds

    def point_targets(self, pred: Tensor, gt: Tensor):
        """Predicted logits and targets (K, num_points) of matched masks on the uncertain points."""
        with torch.no_grad():
            coords = get_uncertain_point_coords_with_randomness(
                pred.detach().float()[:, None],
                None,
                self.num_points,
                self.oversample_ratio,
                self.importance_sample_ratio,
            )
            targets = point_sample(gt.float()[:, None], coords)[:, 0]
        return point_sample(pred.float()[:, None], coords)[:, 0], targets

    def forward(self, outputs: Dict[str, Tensor], batch_data_samples: List) -> Dict[str, Tensor]:
        objectness = outputs['objectness']  # (B, Q, 2)
        instance_masks = torch.einsum('bqc,bchw->bqhw', outputs['instance_embed'], outputs['mask_features'])
        b, q = objectness.shape[:2]
        size = batch_data_samples[0].metainfo['batch_input_shape']
        labels = objectness.new_ones((b, q), dtype=torch.long)  # 1 = no object
        pred_points, gt_points = [], []
        for i, sample in enumerate(batch_data_samples):
            # The sample's index in its dataset (a ConcatDataset's sub-dataset, hence with the
            # record it names); without one, its rank and place in the batch.
            key = (sample.metainfo.get('sample_idx'), sample.metainfo.get('record_id'))
            if key[0] is None:
                key = ('rank', get_rank(), i)
            with self.point_rng(objectness.device, key):
                gt = self.gt_masks(sample, size, objectness.device)
                assigned = self.match(objectness[i], instance_masks[i], gt)
                matched = (assigned > 0).nonzero(as_tuple=True)[0]
                labels[i, matched] = 0
                if len(matched):
                    pred, target = self.point_targets(instance_masks[i, matched], gt[assigned[matched] - 1])
                    pred_points.append(pred)
                    gt_points.append(target)
        # Normalisers averaged over the ranks (as mmdet's Mask2Former does), so that with DDP
        # the loss is that of the global batch, whatever each rank's share of instances.
        class_weight = objectness.new_tensor(self.loss_cls.class_weight or [1.0, 1.0])
        cls_avg = reduce_mean(class_weight[labels].sum()).clamp(min=1e-6)
        loss_cls = self.loss_cls(objectness.flatten(0, 1), labels.flatten(), avg_factor=cls_avg)
        num_masks = sum(len(p) for p in pred_points)
        # No clamp to 1 after the mean: with fewer instances than ranks it would shrink the loss.
        num_masks = reduce_mean(objectness.new_tensor(float(num_masks))).clamp(min=1e-6).item()
        if pred_points:
            pred, target = torch.cat(pred_points), torch.cat(gt_points)
            loss_mask = self.loss_mask(pred.flatten(), target.flatten(), avg_factor=num_masks * self.num_points)
            loss_dice = self.loss_dice(pred, target, avg_factor=num_masks)
        else:  # no instance in the batch: keep the graph, add nothing
            loss_mask = loss_dice = instance_masks.sum() * 0
        return dict(loss_inst_cls=loss_cls, loss_inst_mask=loss_mask, loss_inst_dice=loss_dice)
