"""OmniRIS scores computed from the definitions (SPEC 4), independently of OmniRISMetric: tests
compare the metric's output of a real run with these."""

import numpy as np


def reference_scores(samples):
    """``samples``: (pred mask, gt map, pred_no_target, gt_no_target) with the maps as arrays of the
    same size (gt 255 = void, neither target nor prediction). Returns gIoU, cIoU, N-acc, T-acc."""
    ious, inter_sum, union_sum = [], 0, 0
    tp = fn = tn = fp = 0
    for pred, gt, pred_nt, gt_nt in samples:
        valid = np.asarray(gt) != 255
        p = (np.asarray(pred) > 0) & valid
        g = (np.asarray(gt) == 1) & valid
        inter, union = int((p & g).sum()), int((p | g).sum())
        if gt_nt and pred_nt:
            tp += 1
            ious.append(1.0)
        elif gt_nt:
            fn += 1
            ious.append(0.0)
            union_sum += int(p.sum())
        elif pred_nt:
            fp += 1
            ious.append(0.0)
            union_sum += union
        else:
            tn += 1
            ious.append(inter / union if union else 0.0)
            inter_sum += inter
            union_sum += union
    nan = float('nan')
    return {
        'gIoU': 100.0 * float(np.mean(ious)),
        'cIoU': 100.0 * inter_sum / union_sum if union_sum else 100.0,
        'N-acc': 100.0 * tp / (tp + fn) if tp + fn else nan,
        'T-acc': 100.0 * tn / (tn + fp) if tn + fp else nan,
    }
