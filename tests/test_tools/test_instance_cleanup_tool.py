"""tools/analysis_tools/instance_cleanup.py: each clean-up setting applied to one set of candidates."""

import pytest
import torch
from conftest import load_tool

tool = load_tool('analysis_tools', 'instance_cleanup.py')


def box(y0, y1, x0, x1, size=32):
    m = torch.zeros(size, size, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


def test_settings_score_the_same_candidates():
    gt = box(4, 16, 4, 16)
    union = gt.clone()
    # a hit, its near-duplicate (one row more), and a stray wholly outside the union answer
    masks = torch.stack([gt, box(4, 17, 4, 16), box(20, 30, 20, 30)])
    scores = torch.tensor([0.9, 0.8, 0.7])
    samples = [(masks, scores, union, gt[None], torch.zeros(0, 32, 32, dtype=torch.bool))]
    none, default, cut = (tool.score(samples, tool.SETTINGS[k]) for k in ('none', 'default', 'union-cut only'))
    # none: 3 instances for 1 referred; the stray's 100 pixels and the duplicate's extra row lie outside
    assert none['count-acc'] == 0.0
    assert none['outside'] == pytest.approx(100 * (12 + 100) / (13 * 12 + 100))
    # the cut drops the stray (nothing inside) and trims the duplicate; NMS then removes the duplicate
    assert cut['count-acc'] == 0.0 and cut['outside'] == 0.0
    assert default['count-acc'] == 100.0 and default['outside'] == 0.0
    assert default['mask-AP'] == pytest.approx(100.0)
