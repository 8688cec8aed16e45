from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from ...datasets.utils import IGNORE_INDEX, SKIPPED_KEY, VISUAL_PROMPT_TYPES

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


def _resize_nearest(mask: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """(H, W) -> ``size`` by ``F.interpolate(mode='nearest')``, as the release resizes its masks."""
    return F.interpolate(mask[None, None].float(), size=size, mode='nearest')[0, 0]


def _ratio(num: float, den: float) -> float:
    return 100.0 * num / den if den else float('nan')


def summarize(records: Sequence[dict]) -> Dict[str, float]:
    """gIoU, cIoU, Pr@t, N-acc and T-acc of per-sample counts, in percent."""
    buckets = [r['bucket'] for r in records]
    n = {b: buckets.count(b) for b in ('TP', 'FN', 'FP', 'TN')}
    sum_i = sum(r['inter'] for r in records)
    sum_u = sum(r['union'] for r in records)
    targeted = [r['iou'] for r in records if r['bucket'] in ('FP', 'TN')]
    out = OrderedDict()
    out['cIoU'] = 100.0 * sum_i / sum_u if sum_u else 100.0
    out['gIoU'] = _ratio(sum(r['iou'] for r in records), len(records))
    for t in PR_THRESHOLDS:
        out[f'Pr@{t}'] = _ratio(sum(iou >= t for iou in targeted), len(targeted))
    out['N-acc'] = _ratio(n['TP'], n['TP'] + n['FN'])
    out['T-acc'] = _ratio(n['TN'], n['TN'] + n['FP'])
    return out


@METRICS.register_module()
class OmniRISMetric(SkipCounter, BaseMetric):
    """The OmniRIS metrics (cIoU, gIoU, Pr@0.7/0.8/0.9, N-acc, T-acc), exactly as
    the published evaluator computes them (see SPEC 4), with a breakdown.

    ``process`` reads, from each data sample or its ``to_dict()`` form:
    ``pred_sem_seg.sem_seg`` (1, H, W), ``gt_sem_seg.sem_seg`` (1, H, W),
    ``pred_no_target`` and ``gt_no_target`` (bools) and the optional metainfo
    ``prompt_modality``, ``prompt_types`` and ``setting``. It keeps per-sample
    counts only, never masks, so results gather cheaply across processes.

    Breakdown keys: ``{modality}/{metric}`` (text, visual, omni),
    ``{modality}/{type}/{metric}`` for each visual prompt type of the samples
    (e.g. ``visual/box/gIoU``) and ``{setting}/{metric}`` (``1v1``, ``1vN``,
    ``Nv1``, ``NvN``, ``no-target``).

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
        collect_device (str): As in ``BaseMetric``.
        prefix (str, optional): As in ``BaseMetric``.
    """

    default_prefix: Optional[str] = None

    def __init__(
        self,
        eval_size: Optional[Tuple[int, int]] = None,
        breakdown: bool = True,
        collect_device: str = 'cpu',
        prefix: Optional[str] = None,
    ):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.eval_size = tuple(eval_size) if eval_size is not None else None
        self.breakdown = breakdown
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
            record.update(
                modality=_meta(sample, 'prompt_modality'),
                types=list(_meta(sample, 'prompt_types') or []),
                setting=_meta(sample, 'setting'),
            )
            self.results.append(record)

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
                    for t in r['types']:
                        if t in VISUAL_PROMPT_TYPES:
                            groups.setdefault(f'{r["modality"]}/{t}', []).append(r)
                if r['setting']:
                    groups.setdefault(r['setting'], []).append(r)
        for name in sorted(groups):
            for key, value in summarize(groups[name]).items():
                metrics[f'{name}/{key}'] = value
        self._log_table(results, metrics, groups, skipped)
        metrics['skipped'] = float(len(skipped))
        return metrics

    def _log_table(self, results, metrics, groups, skipped=()) -> None:
        names = list(summarize([]).keys())
        rows = [('all', len(results), [metrics[k] for k in names])]
        rows += [(g, len(groups[g]), [metrics[f'{g}/{k}'] for k in names]) for g in sorted(groups)]
        head = f'{"group":<18}{"n":>7}' + ''.join(f'{k:>9}' for k in names)
        lines = [head] + [f'{g:<18}{n:>7}' + ''.join(f'{v:>9.2f}' for v in vals) for g, n, vals in rows]
        lines.append(self._skipped_line(list(skipped), len(results)))
        MMLogger.get_current_instance().info('OmniRIS results:\n' + '\n'.join(lines))
