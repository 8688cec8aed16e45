from typing import Dict, List, Optional, Sequence

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from .omniris_metric import SkipCounter, _meta


def clicks_to_reach(ious: Sequence[float], thr: float, max_clicks: int) -> int:
    """NoC of one object: the number of the first click whose IoU reaches ``thr``; ``max_clicks``
    if none does (the literature's convention)."""
    for k, iou in enumerate(ious):
        if iou >= thr:
            return k + 1
    return max_clicks


@METRICS.register_module()
class InteractiveSegMetric(SkipCounter, BaseMetric):
    """Interactive-segmentation figures of the IoU after each click (``InteractiveTestLoop``
    puts them on each prediction as ``click_ious``):

    - ``mIoU@1``: the mean IoU after the first click (percent);
    - ``NoC@85`` / ``NoC@90``: the mean number of clicks needed to reach that IoU, an object
      that never does counting ``max_clicks`` (20);
    - ``NoF@85`` / ``NoF@90``: the number of objects that never do.

    Args:
        iou_thrs (Sequence[float]): The NoC thresholds.
    """

    default_prefix: Optional[str] = None

    def __init__(self, iou_thrs: Sequence[float] = (0.85, 0.9), collect_device: str = 'cpu', prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.iou_thrs = tuple(float(t) for t in iou_thrs)

    def process(self, data_batch, data_samples: Sequence) -> None:
        self._count_skipped(data_batch)
        for sample in data_samples:
            ious = sample.get('click_ious')
            if ious is None:
                raise KeyError(
                    'InteractiveSegMetric needs click_ious on each prediction: run it under '
                    "test_cfg=dict(type='InteractiveTestLoop')"
                )
            if not len(ious):
                raise ValueError(f'{_meta(sample, "record_id")}: no click was scored')
            self.results.append(dict(ious=[float(i) for i in ious], max_clicks=int(_meta(sample, 'max_clicks') or 20)))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        results, skipped = self._split_skipped(results)
        metrics = {'mIoU@1': 100.0 * float(np.mean([r['ious'][0] for r in results])) if results else float('nan')}
        for thr in self.iou_thrs:
            name = f'{round(thr * 100):d}'
            noc = [clicks_to_reach(r['ious'], thr, r['max_clicks']) for r in results]
            failed = [r for r in results if max(r['ious']) < thr]
            metrics[f'NoC@{name}'] = float(np.mean(noc)) if noc else float('nan')
            metrics[f'NoF@{name}'] = float(len(failed))
        lines = [f'{k:<8}{v:>9.2f}' for k, v in metrics.items()]
        lines.append(f'objects: {len(results)}, at most {max((r["max_clicks"] for r in results), default=0)} clicks')
        lines.append(self._skipped_line(skipped, len(results)))
        MMLogger.get_current_instance().info('Interactive segmentation:\n' + '\n'.join(lines))
        metrics['skipped'] = float(len(skipped))
        return metrics
