"""Clicks on the target image, placed as the interactive-segmentation literature places them.

The rules (shared by training-time synthesis, the NoC evaluation and the refinement loop):

- the first click is inside the object, far from its border: a pixel whose distance to the
  nearest background pixel is at least ``far`` times the largest such distance;
- every later click goes to the *largest error region* of the current answer (the larger
  connected component of the false negatives and the false positives), at its centre: the
  pixel of that region farthest from the region's border (the image border counts as border).
  A false-negative region gives a positive click, a false-positive region a negative one.

No maintained package offers these as a library function (RITM and SimpleClick ship them inside
their training scripts), so they are written here on SciPy's exact Euclidean distance transform and
OpenCV's connected components.
"""

import math
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
from scipy import ndimage

Click = Tuple[int, int, bool]  # x, y, positive


def _inner_distance(region: np.ndarray) -> np.ndarray:
    """Distance of each pixel of ``region`` to the nearest pixel outside it, the image border
    counting as outside (0 outside the region)."""
    # SciPy's exact transform, not OpenCV's DIST_MASK_PRECISE: OpenCV's float32 result moved by ~1e-6
    # between calls on the same mask (its threads), which moved seeded clicks at ties of the far rule.
    return ndimage.distance_transform_edt(np.pad(region > 0, 1))[1:-1, 1:-1]


def first_click(mask: np.ndarray, rng: np.random.Generator, far: float = 0.5) -> Click:
    """A positive click inside ``mask`` at distance >= ``far`` x the largest distance to its border,
    drawn uniformly among those pixels (``far=1`` gives the centre itself)."""
    dist = _inner_distance(mask > 0)
    if dist.max() <= 0:
        raise ValueError('first_click: the mask is empty')
    ys, xs = np.nonzero(dist >= far * dist.max())
    i = int(rng.integers(len(ys)))
    return int(xs[i]), int(ys[i]), True


def largest_error_click(gt: np.ndarray, pred: np.ndarray, ignore: Optional[np.ndarray] = None) -> Optional[Click]:
    """The click at the centre of the largest error region of ``pred`` against ``gt``; None if
    ``pred`` has no error. ``ignore`` (void pixels) are never errors."""
    gt, pred = gt > 0, pred > 0
    valid = np.ones_like(gt) if ignore is None else ~(ignore > 0)
    best = None  # (area, dist map, positive)
    for error, positive in ((gt & ~pred & valid, True), (pred & ~gt & valid, False)):
        if not error.any():
            continue
        num, labels, stats, _ = cv2.connectedComponentsWithStats(error.astype(np.uint8), connectivity=8)
        k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        area = int(stats[k, cv2.CC_STAT_AREA])
        if best is None or area > best[0]:
            best = (area, _inner_distance(labels == k), positive)
    if best is None:
        return None
    y, x = np.unravel_index(int(np.argmax(best[1])), best[1].shape)
    return int(x), int(y), best[2]


def _perturbed(mask: np.ndarray, rng: np.random.Generator, max_shift: float) -> np.ndarray:
    """A stand-in for a model's imperfect answer: the mask shifted by up to ``max_shift`` of its
    extent and grown or shrunk by up to a tenth of it."""
    ys, xs = np.nonzero(mask)
    extent = max(int(ys.max() - ys.min()), int(xs.max() - xs.min())) + 1
    dx, dy = (rng.uniform(-max_shift, max_shift, 2) * extent).round().astype(int)
    h, w = mask.shape
    out = np.zeros_like(mask, dtype=np.uint8)
    src = mask[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
    out[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src > 0
    size = int(rng.integers(0, max(1, extent // 10) + 1))
    if size:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * size + 1, 2 * size + 1))
        out = (cv2.dilate if rng.random() < 0.5 else cv2.erode)(out, kernel)
    return out > 0


def simulate_clicks(
    mask: np.ndarray,
    rng: np.random.Generator,
    num_clicks: int,
    far: float = 0.5,
    max_shift: float = 0.25,
    distractors: Optional[np.ndarray] = None,
    distractor_prob: float = 0.5,
) -> List[Click]:
    """``num_clicks`` clicks for training: the first by :func:`first_click`, each later one at the
    centre of the largest error region of a stand-in answer (:func:`largest_error_click`); the
    region a click fixes is then taken as fixed, so the next click goes elsewhere. Fewer clicks
    come back when no error is left.

    The stand-in answer is a perturbed copy of the mask and, with probability
    ``distractor_prob`` when ``distractors`` (a label map of the image's other instances, 0 the
    background) has any, each distractor instance with probability one half (at least one): the
    answer of a model that read the click as its category, whose errors are whole other objects,
    so the later clicks include negative ones at their centres as at test time."""
    mask = mask > 0
    clicks = [first_click(mask, rng, far)]
    pred = _perturbed(mask, rng, max_shift)
    others = np.unique(distractors[(distractors > 0) & ~mask]) if distractors is not None else ()
    if len(others) and num_clicks > 1 and rng.random() < distractor_prob:
        chosen = others[rng.random(len(others)) < 0.5]
        chosen = chosen if len(chosen) else others[[int(rng.integers(len(others)))]]
        pred = pred | (np.isin(distractors, chosen) & ~mask)
    for _ in range(num_clicks - 1):
        click = largest_error_click(mask, pred)
        if click is None:
            break
        clicks.append(click)
        x, y, positive = click
        error = (mask & ~pred if positive else pred & ~mask).astype(np.uint8)
        _, labels = cv2.connectedComponents(error, connectivity=8)
        fixed = labels == labels[y, x]
        pred = np.where(fixed, mask, pred)
    return clicks


def click_map(clicks: Sequence[Click], shape: Tuple[int, int], radius: float) -> np.ndarray:
    """(H, W) uint8 map with a filled disk of ``radius`` pixels at every click."""
    out = np.zeros(shape, dtype=np.uint8)
    r = max(0, int(math.floor(radius)))
    for x, y, _ in clicks:
        cv2.circle(out, (int(x), int(y)), r, 1, thickness=-1)
    return out
