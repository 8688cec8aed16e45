from typing import Dict, List, Sequence

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmdet.utils import reduce_mean
from torch import Tensor, nn


def union_targets(batch_data_samples: List, size, ignore_index: int = 255) -> Tensor:
    """Ground-truth union masks (B, H, W) long at the padded input size; padding = ``ignore_index``."""
    targets = []
    for sample in batch_data_samples:
        sem = sample.gt_sem_seg.sem_seg[0].long()
        out = sem.new_full(tuple(size), ignore_index)
        h, w = min(sem.shape[0], size[0]), min(sem.shape[1], size[1])
        out[:h, :w] = sem[:h, :w]
        targets.append(out)
    return torch.stack(targets)


@MODELS.register_module()
class ReferringCriterion(nn.Module):
    """The published OmniSegNet losses, each scaled by ``loss_weight`` (5.0):

    - ``loss_mask``: 2-class cross-entropy of the merged target mask (upsampled to
      the input) against the ground-truth union, class weights ``class_weight``
      (background 0.9, target 1.1), padding ignored;
    - ``loss_minimap``: ``minimap_weight`` (0.1) x cross-entropy of the region
      scores against the union pooled to the region grid (a region is positive
      when it holds any target pixel);
    - ``loss_no_target``: ``no_target_weight`` (0.1) x cross-entropy of the
      no-target score.
    """

    def __init__(
        self,
        loss_weight: float = 5.0,
        class_weight: Sequence[float] = (0.9, 1.1),
        minimap_weight: float = 0.1,
        no_target_weight: float = 0.1,
        ignore_index: int = 255,
    ):
        super().__init__()
        self.loss_weight = loss_weight
        self.register_buffer('class_weight', torch.tensor(class_weight, dtype=torch.float), persistent=False)
        self.minimap_weight = minimap_weight
        self.no_target_weight = no_target_weight
        self.ignore_index = ignore_index

    def forward(self, outputs: Dict[str, Tensor], batch_data_samples: List) -> Dict[str, Tensor]:
        size = batch_data_samples[0].metainfo['batch_input_shape']
        target = union_targets(batch_data_samples, size, self.ignore_index).to(outputs['target_mask'].device)
        logits = F.interpolate(outputs['target_mask'], size, mode='bilinear', align_corners=False)
        # The weighted mean over the valid pixels of the global batch (normaliser averaged over
        # the ranks), which is F.cross_entropy's weighted mean when there is one process.
        loss_mask = F.cross_entropy(
            logits, target, weight=self.class_weight, ignore_index=self.ignore_index, reduction='sum'
        )
        valid = target != self.ignore_index
        loss_mask = loss_mask / reduce_mean(self.class_weight[target[valid]].sum()).clamp(min=1e-6)
        grid = outputs['minimap'].shape[-2:]
        positive = (target == 1).float()[:, None]
        minimap_target = (F.adaptive_max_pool2d(positive, grid)[:, 0] > 0).long()
        loss_minimap = F.cross_entropy(outputs['minimap'], minimap_target)
        nt_target = torch.tensor(
            [bool(s.gt_no_target) for s in batch_data_samples], dtype=torch.long, device=target.device
        )
        loss_nt = F.cross_entropy(outputs['nt_logits'], nt_target)
        return dict(
            loss_mask=self.loss_weight * loss_mask,
            loss_minimap=self.loss_weight * self.minimap_weight * loss_minimap,
            loss_no_target=self.loss_weight * self.no_target_weight * loss_nt,
        )
