import contextlib
import io
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from ...structures import (
    IGNORE_INDEX,
    NEGATIVE_EXEMPLAR_TYPES,
    SKIPPED_KEY,
    TARGET_PROMPT_TYPES,
    VISUAL_PROMPT_TYPES,
)

PR_THRESHOLDS = (0.7, 0.8, 0.9)


def _field(sample, name: str):
    """``sample.name`` or ``sample[name]``, for data samples and their dict forms."""
    if isinstance(sample, dict):
        return sample.get(name)
    return getattr(sample, name, None)


def _mask(sample, name: str) -> torch.Tensor:
    data = _field(sample, name)
    if data is None:
        raise KeyError(f'the data sample has no {name!r}')
    sem_seg = _field(data, 'sem_seg')
    sem_seg = torch.as_tensor(sem_seg if sem_seg is not None else data)
    if sem_seg.dim() == 3:
        sem_seg = sem_seg[0]
    return sem_seg.detach().cpu()


def _meta(sample, name: str):
    value = _field(sample, name)
    if value is None:
        meta = _field(sample, 'metainfo')
        if isinstance(meta, dict):
            value = meta.get(name)
    return value


class SkipCounter:
    """For a metric: count the samples the test dataloader skipped (``on_invalid='skip'``;
    ``omni_collate`` lists them in the batch under ``SKIPPED_KEY``). Their number is the
    metric's ``skipped`` result and a line under its table."""

    def _count_skipped(self, data_batch) -> None:
        for message in data_batch.get(SKIPPED_KEY, ()) if isinstance(data_batch, dict) else ():
            self.results.append({SKIPPED_KEY: message})

    @staticmethod
    def _split_skipped(results: List[dict]):
        return [r for r in results if SKIPPED_KEY not in r], [r[SKIPPED_KEY] for r in results if SKIPPED_KEY in r]

    @staticmethod
    def _skipped_line(skipped: List[str], scored: int) -> str:
        if not skipped:
            return f'skipped: 0 (all {scored} samples scored)'
        return (
            f"skipped: {len(skipped)} of {len(skipped) + scored} samples were not scored (on_invalid='skip'); "
            f'the figures are over the other {scored}. First: {skipped[0]}'
        )


def sample_counts(
    pred: torch.Tensor, gt: torch.Tensor, pred_nt: bool, gt_nt: bool, ignore_index: int = IGNORE_INDEX
) -> Dict:
    """Per-sample counts of the OmniRIS evaluator (SPEC 4): bucket, I, U and IoU.
    Ground-truth pixels at ``ignore_index`` (a crowd region of a referred category)
    count neither as target nor as prediction."""
    valid = gt != ignore_index
    pred = (pred > 0) & valid
    gt = (gt > 0) & valid
    p_area = int(pred.sum())
    inter = int((pred & gt).sum())
    union = int((pred | gt).sum())
    if gt_nt and pred_nt:
        bucket, inter, union, iou = 'TP', 0, 0, 1.0
    elif gt_nt:
        bucket, inter, union, iou = 'FN', 0, p_area, 0.0
    elif pred_nt:
        bucket, inter, iou = 'FP', 0, 0.0
    else:
        bucket, iou = 'TN', (inter / union if union else 0.0)
    return dict(bucket=bucket, inter=inter, union=union, iou=iou)


INSTANCE_KEYS = ('count-acc', 'mask-AP', 'mask-AP50', 'outside')


def _instance_masks(sample, field: str, name: str = 'masks') -> Optional[torch.Tensor]:
    """The (k, H, W) bool masks of ``sample.field.masks`` (tensor or mmdet ``BitmapMasks``), or
    None when the sample has no such field."""
    data = _field(sample, field)
    masks = _field(data, name) if data is not None else None
    if masks is None:
        return None
    masks = getattr(masks, 'masks', masks)  # BitmapMasks -> (k, H, W) array
    return torch.as_tensor(np.asarray(masks) if not torch.is_tensor(masks) else masks).detach().cpu().bool()


def _rles(masks: torch.Tensor) -> List[dict]:
    """COCO run-length encodings of (k, H, W) bool masks."""
    from pycocotools import mask as mask_utils

    return [mask_utils.encode(np.asfortranarray(m.numpy().astype(np.uint8))) for m in masks]


def instance_counts(
    pred_masks: torch.Tensor,
    pred_scores: torch.Tensor,
    gt_masks: torch.Tensor,
    crowd_masks: torch.Tensor,
    union_pred: torch.Tensor,
) -> Dict:
    """Per-sample record of the instance output: the predicted and referred numbers of
    instances, the run-length encoded masks with the scores (for the mask AP) and the instance
    pixels outside the union answer ``union_pred`` (predicted instance masks, their union, that
    the union mask does not contain)."""
    inst = pred_masks.any(0) if len(pred_masks) else torch.zeros_like(union_pred, dtype=torch.bool)
    return dict(
        n_pred=len(pred_masks),
        n_gt=len(gt_masks),
        size=tuple(union_pred.shape),
        pred_rles=_rles(pred_masks),
        pred_scores=[float(s) for s in pred_scores],
        gt_rles=_rles(gt_masks),
        crowd_rles=_rles(crowd_masks),
        inst_pixels=int(inst.sum()),
        outside_pixels=int((inst & ~(union_pred > 0)).sum()),
    )


def mask_ap(records: Sequence[dict]) -> Tuple[float, float]:
    """COCO mask AP and AP50 (pycocotools' ``COCOeval``, in percent) of the referred instances over
    ``records`` of :func:`instance_counts`: one image per record, one category; crowd regions
    are COCO crowd annotations; predictions on a sample with nothing referred are false
    positives. NaN when no record refers to anything."""
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not any(r['n_gt'] for r in records):
        return float('nan'), float('nan')
    images, anns, dets = [], [], []
    for img_id, r in enumerate(records):
        images.append(dict(id=img_id, height=r['size'][0], width=r['size'][1]))
        for crowd, rles in ((0, r['gt_rles']), (1, r['crowd_rles'])):
            for rle in rles:
                anns.append(
                    dict(
                        id=len(anns) + 1,
                        image_id=img_id,
                        category_id=1,
                        segmentation=rle,
                        area=float(mask_utils.area(rle)),
                        bbox=mask_utils.toBbox(rle).tolist(),
                        iscrowd=crowd,
                    )
                )
        dets += [
            dict(image_id=img_id, category_id=1, segmentation=rle, score=score)
            for rle, score in zip(r['pred_rles'], r['pred_scores'])
        ]
    if not dets:
        return 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and table
        gt = COCO()
        gt.dataset = dict(images=images, annotations=anns, categories=[dict(id=1, name='referred')])
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(dets), iouType='segm')
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return 100.0 * max(evaluator.stats[0], 0.0), 100.0 * max(evaluator.stats[1], 0.0)


def summarize_instances(records: Sequence[dict]) -> Dict[str, float]:
    """Count accuracy (predicted number of instances = referred number), mask AP and AP50 of
    the referred instances, and the share of instance pixels outside the union answer, in percent."""
    out = OrderedDict()
    out['count-acc'] = _ratio(sum(r['n_pred'] == r['n_gt'] for r in records), len(records))
    out['mask-AP'], out['mask-AP50'] = mask_ap(records)
    out['outside'] = _ratio(sum(r['outside_pixels'] for r in records), sum(r['inst_pixels'] for r in records))
    return out


def _resize_nearest(mask: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """(H, W) -> ``size`` by ``F.interpolate(mode='nearest')``, as the release resizes its masks."""
    return F.interpolate(mask[None, None].float(), size=size, mode='nearest')[0, 0]


def _resize_nearest_stack(masks: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """(k, H, W) bool -> (k, *size) by nearest neighbour, as :func:`_resize_nearest`."""
    if tuple(masks.shape[1:]) == tuple(size):
        return masks
    if not len(masks):
        return masks.new_zeros((0, *size))
    return F.interpolate(masks[None].float(), size=size, mode='nearest')[0].bool()


def _ratio(num: float, den: float) -> float:
    return 100.0 * num / den if den else float('nan')


def summarize(records: Sequence[dict]) -> Dict[str, float]:
    """cIoU, gIoU, mIoU, Pr@t, N-acc and T-acc of per-sample counts, in percent."""
    buckets = [r['bucket'] for r in records]
    n = {b: buckets.count(b) for b in ('TP', 'FN', 'FP', 'TN')}
    sum_i = sum(r['inter'] for r in records)
    sum_u = sum(r['union'] for r in records)
    targeted = [r['iou'] for r in records if r['bucket'] in ('FP', 'TN')]
    out = OrderedDict()
    out['cIoU'] = 100.0 * sum_i / sum_u if sum_u else 100.0
    out['gIoU'] = _ratio(sum(r['iou'] for r in records), len(records))
    # The referring-segmentation mIoU: the mean IoU of the samples with a target (gIoU without no-target ones).
    out['mIoU'] = _ratio(sum(targeted), len(targeted))
    for t in PR_THRESHOLDS:
        out[f'Pr@{t}'] = _ratio(sum(iou >= t for iou in targeted), len(targeted))
    out['N-acc'] = _ratio(n['TP'], n['TP'] + n['FN'])
    out['T-acc'] = _ratio(n['TN'], n['TN'] + n['FP'])
    excluded = [r for r in records if 'excl_total' in r]
    if excluded:  # negative exemplars: the share of the excluded kind's pixels in the answers
        out['excluded'] = _ratio(sum(r['excl_hit'] for r in excluded), sum(r['excl_total'] for r in excluded))
    return out


@METRICS.register_module()
class OmniRISMetric(SkipCounter, BaseMetric):
    """The OmniRIS metrics (cIoU, gIoU, Pr@0.7/0.8/0.9, N-acc, T-acc), exactly as
    the published evaluator computes them (see SPEC 4), with mIoU and a breakdown.

    ``process`` reads, from each data sample or its ``to_dict()`` form:
    ``pred_sem_seg.sem_seg`` (1, H, W), ``gt_sem_seg.sem_seg`` (1, H, W),
    ``pred_no_target`` and ``gt_no_target`` (bools) and the optional metainfo
    ``prompt_modality``, ``prompt_types`` and ``setting``. It keeps per-sample
    counts only, never masks, so results gather cheaply across processes.

    With ``instances`` (default), the instance output is scored as well, on every sample that
    carries ``pred_instances`` (``masks`` (k, H, W), ``scores``) and ``gt_instances.masks`` (the
    referred instances; ``ignored_instances.masks``, crowd regions, are COCO crowd annotations):
    ``count-acc`` (the share of samples whose number of predicted instances is the referred
    number, 0 for "no target"), ``mask-AP`` and ``mask-AP50`` (COCO mask AP of the referred
    instances, one category, by pycocotools) and ``outside`` (the share of predicted instance
    pixels that the union answer ``pred_sem_seg`` does not contain), in the breakdown too.

    Breakdown keys: ``{modality}/{metric}`` (text, visual, omni, and target for
    prompts on the target image), ``{modality}/{type}/{metric}`` for each visual or
    target prompt type of the samples (e.g. ``visual/box/gIoU``, ``target/click/gIoU``)
    and ``{setting}/{metric}`` (``1v1``, ``1vN``, ``Nv1``, ``NvN``, ``no-target``); for samples that
    carry a ``granularity`` (``RefCocoMDataset``), ``{granularity}/{metric}`` (``part``, ``object``).
    ``mIoU`` is the referring-segmentation mean IoU: the mean of the per-sample IoU over the samples
    with a target (``gIoU`` without the no-target samples; RefCOCOm's and RefCOCO's mIoU).

    Args:
        eval_size (tuple, optional): ``(h, w)``: score at this size, as the
            published protocol does with ``(480, 480)``: the ground truth is
            resized to it by nearest neighbour (``F.interpolate``, as the release
            resizes its masks), the prediction is taken as it is when the model
            predicts at that size (``model.head.test_cfg.pred_size='input'`` with
            a test pipeline resizing to ``eval_size``: the published protocol,
            see ``configs/omnisegnet/eval/*_release.py``), and is otherwise resized
            by nearest neighbour too, with a warning: a prediction rescaled to the
            original size and back is not the published protocol (thin
            structures change on the round trip). None (default) scores at the
            resolution of the ground truth (the original image).
        breakdown (bool): Add the breakdown keys.
        instances (bool): Score the instance output where the samples carry it.
        collect_device (str): As in ``BaseMetric``.
        prefix (str, optional): As in ``BaseMetric``.
    """

    default_prefix: Optional[str] = None

    def __init__(
        self,
        eval_size: Optional[Tuple[int, int]] = None,
        breakdown: bool = True,
        instances: bool = True,
        collect_device: str = 'cpu',
        prefix: Optional[str] = None,
    ):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.eval_size = tuple(eval_size) if eval_size is not None else None
        self.breakdown = breakdown
        self.instances = instances
        self._warned_round_trip = False

    def process(self, data_batch, data_samples: Sequence) -> None:
        self._count_skipped(data_batch)
        for sample in data_samples:
            pred = _mask(sample, 'pred_sem_seg')
            gt = _mask(sample, 'gt_sem_seg')
            if self.eval_size is not None:
                if tuple(pred.shape) != self.eval_size:
                    self._warn_round_trip(pred, sample)
                    pred = _resize_nearest(pred, self.eval_size)
                gt = _resize_nearest(gt, self.eval_size)
            elif pred.shape != gt.shape:
                raise ValueError(
                    f'prediction {tuple(pred.shape)} and ground truth {tuple(gt.shape)} differ in '
                    f'size for sample {_meta(sample, "img_path")}; predict at the original size '
                    'or set eval_size'
                )
            pred_nt, gt_nt = _field(sample, 'pred_no_target'), _field(sample, 'gt_no_target')
            if pred_nt is None or gt_nt is None:
                raise KeyError('OmniRISMetric needs pred_no_target and gt_no_target on every data sample')
            record = sample_counts(pred, gt, bool(pred_nt), bool(gt_nt))
            if _field(sample, 'gt_excluded') is not None:
                excl = _mask(sample, 'gt_excluded')
                if self.eval_size is not None:
                    excl = _resize_nearest(excl, self.eval_size)
                if excl.shape != pred.shape:
                    raise ValueError(
                        f'gt_excluded {tuple(excl.shape)} and the prediction {tuple(pred.shape)} differ in size '
                        f'for sample {_meta(sample, "img_path")}'
                    )
                excl = excl > 0
                record.update(excl_total=int(excl.sum()), excl_hit=int((excl & (pred > 0)).sum()))
            if self.instances:
                instance = self._instance_record(sample, pred)
                if instance is not None:
                    record['instance'] = instance
            record.update(
                modality=_meta(sample, 'prompt_modality'),
                types=list(_meta(sample, 'prompt_types') or []),
                setting=_meta(sample, 'setting'),
                granularity=_meta(sample, 'granularity'),
            )
            self.results.append(record)

    def _instance_record(self, sample, union_pred: torch.Tensor) -> Optional[dict]:
        pred = _instance_masks(sample, 'pred_instances')
        gt = _instance_masks(sample, 'gt_instances')
        if pred is None or gt is None:
            return None
        crowd = _instance_masks(sample, 'ignored_instances')
        crowd = crowd if crowd is not None else gt[:0]
        scores = torch.as_tensor(_field(_field(sample, 'pred_instances'), 'scores')).detach().cpu()
        if len(scores) != len(pred):
            raise ValueError(
                f'{_meta(sample, "img_path")}: pred_instances has {len(pred)} masks and {len(scores)} scores'
            )
        if self.eval_size is not None:
            pred, gt, crowd = (_resize_nearest_stack(m, self.eval_size) for m in (pred, gt, crowd))
        for name, masks, like in (('pred', pred, union_pred), ('gt', gt, union_pred), ('ignored', crowd, union_pred)):
            if masks.shape[1:] != like.shape:
                raise ValueError(
                    f'{_meta(sample, "img_path")}: {name}_instances masks are {tuple(masks.shape[1:])}, '
                    f'the union answer {tuple(like.shape)}'
                )
        return instance_counts(pred, scores, gt, crowd, union_pred)

    def _warn_round_trip(self, pred, sample) -> None:
        if not self._warned_round_trip:
            self._warned_round_trip = True
            MMLogger.get_current_instance().warning(
                f'OmniRISMetric(eval_size={self.eval_size}): the prediction of {_meta(sample, "img_path")} is '
                f'{tuple(pred.shape)}, resized to {self.eval_size} by nearest neighbour. The published protocol '
                "scores the prediction at the input size: set model.head.test_cfg.pred_size='input' with a "
                'test pipeline that resizes to eval_size'
            )

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        results, skipped = self._split_skipped(results)
        metrics = summarize(results)
        groups = OrderedDict()
        if self.breakdown:
            for r in results:
                if r['modality']:
                    groups.setdefault(r['modality'], []).append(r)
                    for t in dict.fromkeys(r['types']):  # once per type (k shots of one type: one sample)
                        if t in VISUAL_PROMPT_TYPES + TARGET_PROMPT_TYPES + NEGATIVE_EXEMPLAR_TYPES:
                            groups.setdefault(f'{r["modality"]}/{t}', []).append(r)
                if r['setting']:
                    groups.setdefault(r['setting'], []).append(r)
                if r.get('granularity'):
                    groups.setdefault(r['granularity'], []).append(r)
        for name in sorted(groups):
            for key, value in summarize(groups[name]).items():
                metrics[f'{name}/{key}'] = value
        instanced = [r for r in results if 'instance' in r]
        if instanced:
            for name, group in [('', instanced)] + [(f'{g}/', groups[g]) for g in sorted(groups)]:
                records = [r['instance'] for r in group if 'instance' in r]
                for key, value in summarize_instances(records).items():
                    metrics[f'{name}{key}'] = value
        self._log_table(results, metrics, groups, skipped)
        metrics['skipped'] = float(len(skipped))
        return metrics

    def _log_table(self, results, metrics, groups, skipped=()) -> None:
        names = list(summarize([]).keys())
        rows = [('all', len(results), [metrics[k] for k in names])]
        rows += [(g, len(groups[g]), [metrics[f'{g}/{k}'] for k in names]) for g in sorted(groups)]
        head = f'{"group":<18}{"n":>7}' + ''.join(f'{k:>9}' for k in names)
        lines = [head] + [f'{g:<18}{n:>7}' + ''.join(f'{v:>9.2f}' for v in vals) for g, n, vals in rows]
        if 'count-acc' in metrics:
            n_inst = [sum('instance' in r for r in rs) for rs in [results] + [groups[g] for g in sorted(groups)]]
            lines.append('instances:')
            lines.append(f'{"group":<18}{"n":>7}' + ''.join(f'{k:>11}' for k in INSTANCE_KEYS))
            for (g, _, _), n in zip(rows, n_inst):
                prefix = '' if g == 'all' else f'{g}/'
                lines.append(f'{g:<18}{n:>7}' + ''.join(f'{metrics[prefix + k]:>11.2f}' for k in INSTANCE_KEYS))
        if 'excluded' in metrics:
            lines.append(
                f"negative exemplars: the answers cover {metrics['excluded']:.2f} % of the excluded kind's pixels"
            )
        lines.append(self._skipped_line(list(skipped), len(results)))
        MMLogger.get_current_instance().info('OmniRIS results:\n' + '\n'.join(lines))
