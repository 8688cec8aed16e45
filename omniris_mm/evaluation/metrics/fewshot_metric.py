from typing import Dict, List, Optional, Sequence

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from .omniris_metric import SkipCounter, _mask, _meta


@METRICS.register_module()
class FewShotSegMetric(SkipCounter, BaseMetric):
    """Few-shot segmentation metrics for PASCAL-5i style episodes.

    Each data sample is one episode: ``pred_sem_seg.sem_seg`` (binary),
    ``gt_sem_seg.sem_seg`` (0 background, 1 the episode class, ``ignore_index``
    void) and metainfo ``category_id`` (the episode class). Pixels marked void are
    ignored.

    - per-class IoU: foreground intersection over union accumulated over all
      episodes of that class; ``mIoU``: their mean over the classes seen (the
      fold's 5 classes).
    - ``FB-IoU``: the mean of the dataset-level background IoU and foreground IoU.

    Args:
        ignore_index (int): Void label. Defaults to 255.
    """

    default_prefix: Optional[str] = None

    def __init__(self, ignore_index: int = 255, collect_device: str = 'cpu', prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ignore_index = ignore_index

    def process(self, data_batch, data_samples: Sequence) -> None:
        self._count_skipped(data_batch)
        for sample in data_samples:
            pred = _mask(sample, 'pred_sem_seg').numpy() > 0
            gt = _mask(sample, 'gt_sem_seg').numpy()
            if pred.shape != gt.shape:
                raise ValueError(f'prediction {pred.shape} and ground truth {gt.shape} differ in size')
            cat = _meta(sample, 'category_id')
            if cat is None:
                raise KeyError('FewShotSegMetric needs the episode class as metainfo category_id')
            valid = gt != self.ignore_index
            fg = (gt == 1) & valid
            p = pred & valid
            self.results.append(
                dict(
                    category_id=int(cat),
                    fg_inter=int((p & fg).sum()),
                    fg_union=int((p | fg).sum()),
                    bg_inter=int((~p & ~fg & valid).sum()),
                    bg_union=int(((~p | ~fg) & valid).sum()),
                )
            )

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        results, skipped = self._split_skipped(results)
        per_class = {}
        for r in results:
            acc = per_class.setdefault(r['category_id'], [0, 0])
            acc[0] += r['fg_inter']
            acc[1] += r['fg_union']
        class_iou = {c: 100.0 * i / u if u else float('nan') for c, (i, u) in sorted(per_class.items())}
        fg_iou = sum(r['fg_inter'] for r in results) / max(sum(r['fg_union'] for r in results), 1)
        bg_iou = sum(r['bg_inter'] for r in results) / max(sum(r['bg_union'] for r in results), 1)
        metrics = {
            'mIoU': float(np.nanmean(list(class_iou.values()))) if class_iou else float('nan'),
            'FB-IoU': 100.0 * (fg_iou + bg_iou) / 2,
        }
        metrics.update({f'IoU/{c}': v for c, v in class_iou.items()})
        episodes = {}
        for r in results:
            episodes[r['category_id']] = episodes.get(r['category_id'], 0) + 1
        names = (self.dataset_meta or {}).get('classes')
        lines = [f'{"class":<16}{"episodes":>9}{"IoU":>9}']
        for c, iou in class_iou.items():
            label = names[c - 1] if names and 0 < c <= len(names) else str(c)
            lines.append(f'{label:<16}{episodes[c]:>9}{iou:>9.2f}')
        lines.append(f'{"mIoU":<16}{len(results):>9}{metrics["mIoU"]:>9.2f}')
        lines.append(f'{"FB-IoU":<16}{len(results):>9}{metrics["FB-IoU"]:>9.2f}')
        lines.append(self._skipped_line(skipped, len(results)))
        MMLogger.get_current_instance().info('Few-shot results:\n' + '\n'.join(lines))
        metrics['skipped'] = float(len(skipped))
        return metrics
