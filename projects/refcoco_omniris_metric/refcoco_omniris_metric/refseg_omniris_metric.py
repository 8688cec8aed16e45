from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from mmdet.registry import METRICS
from torch import Tensor

from omniris_mm.evaluation import OmniRISMetric


def _get(obj, name: str):
    """``obj.name`` or ``obj[name]``: data samples and their ``to_dict()`` forms alike."""
    if obj is None:
        return None
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def _masks(masks) -> Tensor:
    """``BitmapMasks``, an array or a tensor of N masks -> (N, H, W) uint8 tensor on the CPU."""
    if hasattr(masks, 'to_tensor'):
        return masks.to_tensor(torch.uint8, 'cpu')
    if not isinstance(masks, Tensor):
        masks = torch.as_tensor(np.asarray(masks))
    return masks.detach().cpu().to(torch.uint8)


@METRICS.register_module()
class RefSegOmniRISMetric(OmniRISMetric):
    """:class:`OmniRISMetric` on the data samples of MMDetection's stock referring segmentation pipeline.

    Why it exists: mmdet's ``RefCocoDataset`` with its stock pipeline (``LoadAnnotations(with_mask=True)``,
    ``PackDetInputs`` with ``gt_masks`` and ``text`` in ``meta_keys``) yields one data sample per *image*:
    ``gt_masks`` holds one mask per referring expression (N, H, W) and ``text`` the N expressions; models
    answer with ``pred_instances.masks`` (N, H, W), one mask per expression in the same order (what mmdet's
    ``RefSegMetric`` reads). ``OmniRISMetric`` scores one prompt per sample (``gt_sem_seg``,
    ``pred_sem_seg``, ``gt_no_target``, ``pred_no_target``). A pipeline transform cannot split an image into
    its N expressions (one sample in, one out) and the predictions only exist after the model, so the split
    happens here: each expression becomes one OmniRIS sample and the parent class counts it. The counts of
    an image's expressions stay together in one entry of ``results``, so that ``evaluate(len(dataset))``,
    as the loops call it, keeps every expression of every image.

    Per expression: the ground truth is its mask, with ``gt_no_target=False`` (a RefCOCO expression refers
    to one annotated object); the prediction is its predicted mask and the model's no-target decision
    ``pred_no_target`` (one flag per expression, or one for all), ``False`` when the model makes none (as
    in the SPEC, the metric never infers it from the mask). Expressions are tagged ``prompt_modality='text'``
    and ``setting='1v1'``, so the breakdown adds ``text/...`` and ``1v1/...`` keys.

    Args:
        Those of :class:`OmniRISMetric`.
    """

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            first = len(self.results)
            super().process(data_batch, self._expressions(sample))
            # One entry per data sample: the loops call evaluate(len(dataset)), which keeps that many entries.
            self.results[first:] = [self.results[first:]]

    def compute_metrics(self, results: List[List[dict]]) -> Dict[str, float]:
        return super().compute_metrics([expression for image in results for expression in image])

    def _expressions(self, sample) -> List[dict]:
        """The OmniRIS samples of one image's referring expressions."""
        gt_masks = _get(sample, 'gt_masks')
        if gt_masks is None:
            gt_masks = _get(_get(sample, 'gt_instances'), 'masks')
        pred_masks = _get(_get(sample, 'pred_instances'), 'masks')
        if gt_masks is None or pred_masks is None:
            raise KeyError(
                'RefSegOmniRISMetric needs gt_masks (or gt_instances.masks) and pred_instances.masks; '
                "pack gt_masks with PackDetInputs(meta_keys=(..., 'gt_masks', 'text'))"
            )
        gt, pred = _masks(gt_masks), _masks(pred_masks)
        if len(gt) != len(pred):
            raise ValueError(
                f'{_get(sample, "img_path")}: {len(gt)} referring expressions but {len(pred)} predicted masks; '
                'predict one mask per expression, in the order of gt_masks'
            )
        flags = self._no_target_flags(_get(sample, 'pred_no_target'), len(gt))
        return [
            dict(
                gt_sem_seg=dict(sem_seg=gt[i : i + 1]),
                pred_sem_seg=dict(sem_seg=pred[i : i + 1]),
                gt_no_target=False,
                pred_no_target=flags[i],
                img_path=_get(sample, 'img_path'),
                prompt_modality='text',
                prompt_types=['text'],
                setting='1v1',
            )
            for i in range(len(gt))
        ]

    @staticmethod
    def _no_target_flags(pred_no_target: Optional[object], num: int) -> List[bool]:
        if pred_no_target is None:
            return [False] * num
        flags = torch.as_tensor(pred_no_target).flatten().bool().tolist()
        if len(flags) == 1:
            return flags * num
        if len(flags) != num:
            raise ValueError(f'{len(flags)} pred_no_target flags for {num} referring expressions')
        return flags
