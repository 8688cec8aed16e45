from typing import Dict, List

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.utils import ConfigType, reduce_mean
from mmengine.structures import InstanceData
from torch import Tensor, nn


@MODELS.register_module()
class InstanceCriterion(nn.Module):
    """Losses of the instance branch: each referred instance is matched to one
    query (mmdet's ``HungarianAssigner`` with its classification, mask
    cross-entropy and dice match costs, as in Mask2Former); matched queries learn
    "object" and the instance mask, the others "no object". A no-target sample
    has no instance: every query learns "no object".

    Masks are compared at the resolution of the predicted masks (stride 4); the
    ground truth is resized to it.
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
    ):
        super().__init__()
        self.assigner = TASK_UTILS.build(assigner)
        self.loss_cls = MODELS.build(loss_cls)
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_dice = MODELS.build(loss_dice)

    def forward(self, outputs: Dict[str, Tensor], batch_data_samples: List) -> Dict[str, Tensor]:
        objectness = outputs['objectness']  # (B, Q, 2)
        instance_masks = torch.einsum('bqc,bchw->bqhw', outputs['instance_embed'], outputs['mask_features'])
        b, q = objectness.shape[:2]
        size = instance_masks.shape[-2:]
        labels = objectness.new_ones((b, q), dtype=torch.long)  # 1 = no object
        pred_masks, gt_masks = [], []
        for i, sample in enumerate(batch_data_samples):
            masks = sample.gt_instances.masks
            gt = masks.to_tensor(torch.float, objectness.device) if hasattr(masks, 'to_tensor') else masks.float()
            # Ground truth at the padded input size -> the mask resolution.
            gt = (
                (F.interpolate(gt[None], size, mode='bilinear', align_corners=False)[0] > 0.5).float()
                if len(gt)
                else gt.new_zeros((0,) + tuple(size))
            )
            gt_inst = InstanceData(labels=gt.new_zeros(len(gt), dtype=torch.long), masks=gt)
            pred_inst = InstanceData(scores=objectness[i].detach(), masks=instance_masks[i].detach())
            assigned = self.assigner.assign(pred_inst, gt_inst).gt_inds  # 0 = unmatched, k = gt k-1
            matched = (assigned > 0).nonzero(as_tuple=True)[0]
            labels[i, matched] = 0
            pred_masks.append(instance_masks[i, matched])
            gt_masks.append(gt[assigned[matched] - 1])
        # Normalisers averaged over the ranks (as mmdet's Mask2Former does), so that with DDP
        # the loss is that of the global batch, whatever each rank's share of instances.
        class_weight = objectness.new_tensor(self.loss_cls.class_weight or [1.0, 1.0])
        cls_avg = reduce_mean(class_weight[labels].sum()).clamp(min=1e-6)
        loss_cls = self.loss_cls(objectness.flatten(0, 1), labels.flatten(), avg_factor=cls_avg)
        pred_masks, gt_masks = torch.cat(pred_masks), torch.cat(gt_masks)
        # No clamp to 1 after the mean: with fewer instances than ranks it would shrink the loss.
        num_masks = reduce_mean(objectness.new_tensor(float(len(gt_masks)))).clamp(min=1e-6).item()
        if len(pred_masks):
            loss_mask = self.loss_mask(pred_masks.flatten(1), gt_masks.flatten(1), avg_factor=num_masks * size.numel())
            loss_dice = self.loss_dice(pred_masks.flatten(1), gt_masks.flatten(1), avg_factor=num_masks)
        else:  # no instance in the batch: keep the graph, add nothing
            loss_mask = loss_dice = instance_masks.sum() * 0
        return dict(loss_inst_cls=loss_cls, loss_inst_mask=loss_mask, loss_inst_dice=loss_dice)
