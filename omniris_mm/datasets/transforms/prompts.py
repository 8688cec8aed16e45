import math
from typing import Dict, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS

from ..utils import TARGET_PROMPT_TYPES, VISUAL_PROMPT_TYPES, OmniDataError
from .clicks import click_map, simulate_clicks


def box_prompt(mask: np.ndarray) -> np.ndarray:
    """The filled tight bounding box of ``mask``."""
    ys, xs = np.nonzero(mask)
    out = np.zeros_like(mask, dtype=np.uint8)
    out[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = 1
    return out


def scribble_prompt(
    mask: np.ndarray,
    rng: np.random.Generator,
    max_strokes: int = 20,
    width_range: Tuple[float, float] = (2.5, 10.0),
    base_size: int = 480,
) -> np.ndarray:
    """Random brush strokes seeded inside ``mask`` and clipped to it.

    ``1..min(max_strokes, area)`` strokes; each is a polyline of 1 to 3 segments
    starting at a random pixel of the mask, each segment 10 to 40 % of the
    object's extent long, with a brush width drawn from ``width_range`` (pixels
    at ``base_size`` x ``base_size``, scaled with the map's size). Never empty:
    every stroke starts inside the mask.
    """
    ys, xs = np.nonzero(mask)
    area = len(ys)
    h, w = mask.shape
    scale = math.sqrt(h * w) / base_size
    extent = max(int(ys.max() - ys.min()), int(xs.max() - xs.min())) + 1
    canvas = np.zeros((h, w), dtype=np.uint8)
    for _ in range(int(rng.integers(1, min(max_strokes, area) + 1))):
        start = int(rng.integers(area))
        points = [np.array([xs[start], ys[start]], dtype=np.float64)]
        for _ in range(int(rng.integers(1, 4))):
            angle = rng.uniform(0, 2 * math.pi)
            length = rng.uniform(0.1, 0.4) * extent
            points.append(points[-1] + length * np.array([math.cos(angle), math.sin(angle)]))
        thickness = max(1, int(round(rng.uniform(*width_range) * scale)))
        cv2.polylines(canvas, [np.round(np.stack(points)).astype(np.int32)], False, 1, thickness)
        canvas[ys[start], xs[start]] = 1
    return canvas & (mask > 0).astype(np.uint8)


def jittered_box_prompt(mask: np.ndarray, rng: np.random.Generator, jitter: float) -> np.ndarray:
    """:func:`box_prompt` with each edge moved by up to ``jitter`` of the box's side, in the image."""
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    dx0, dx1, dy0, dy1 = rng.uniform(-jitter, jitter, 4)
    h, w = mask.shape
    bw, bh = x1 - x0, y1 - y0
    nx0 = int(np.clip(round(x0 + dx0 * bw), 0, w - 1))
    nx1 = int(np.clip(round(x1 + dx1 * bw), nx0 + 1, w))
    ny0 = int(np.clip(round(y0 + dy0 * bh), 0, h - 1))
    ny1 = int(np.clip(round(y1 + dy1 * bh), ny0 + 1, h))
    out = np.zeros_like(mask, dtype=np.uint8)
    out[ny0:ny1, nx0:nx1] = 1
    return out


def click_prompts(clicks, shape: Tuple[int, int], radius: float) -> list:
    """The prompts of clicks on the target: ``[('click', map, positive clicks)]`` and, if any
    click is negative, ``('neg_click', map, negative clicks)`` after it; each map has a disk of
    ``radius`` pixels per click. Clicks are ``(x, y, positive)``; one must be positive."""
    clicks = [(int(round(float(x))), int(round(float(y))), bool(p)) for x, y, p in clicks]
    pos = [c for c in clicks if c[2]]
    neg = [c for c in clicks if not c[2]]
    if not pos:
        raise ValueError(f'clicks on the target need a positive click, got {clicks}')
    h, w = shape
    outside = [c for c in clicks if not (0 <= c[0] < w and 0 <= c[1] < h)]
    if outside:
        raise ValueError(f'clicks {outside} lie outside the {w}x{h} image')
    out = [('click', click_map(pos, shape, radius), pos)]
    if neg:
        out.append(('neg_click', click_map(neg, shape, radius), neg))
    return out


@TRANSFORMS.register_module()
class SynthesizePromptMaps(BaseTransform):
    """Turn each visual prompt's reference instance mask into its prompt map.

    The prompt type of a prompt is its ``prompt_type`` if the dataset fixed one,
    else drawn with ``prompt_probs``. Randomness comes from the sample's
    ``prompt_seed`` (fixed per sample in test mode), so test-time prompts are the
    same on every run. Adds ``prompt_map`` (H, W) uint8 and sets ``prompt_type``.
    Place it after the geometric transforms so that brush widths are in output
    pixels (they are scaled to the map's size either way).

    A prompt with ``on_target`` True is drawn on the target image itself and means
    that one instance (``CocoTargetPromptDataset``). Its type, drawn with
    ``target_prompt_probs`` unless fixed, is one of:

    - ``click``: ``num_clicks`` clicks placed as interactive segmentation places them
      (:func:`~.clicks.simulate_clicks`: the first inside the object far from its
      border, the later ones at the centre of the largest error region of a stand-in
      answer); the positive clicks are this prompt's map (disks of ``click_radius``),
      the negative ones, if any, a second prompt of type ``neg_click`` inserted right
      after it. Both keep their clicks as ``clicks`` ([x, y, positive], output pixels).
      A prompt that comes with ``clicks`` (an inference request's, moved with the image by
      the geometric transforms) keeps them.
    - ``target_box``: the instance's box, each edge moved by up to ``box_jitter`` of the
      box's side (a test config sets ``box_jitter=0``: the tight box).
    - ``target_scribble``: a scribble inside the instance, as ``scribble``.

    A prompt that arrives with its ``prompt_map`` (a mask, box or scribble a user drew, given to
    the inferencer) keeps it as drawn; what needs a drawing rule, a click's disk, is drawn here.

    Args:
        prompt_probs (dict): Relative probabilities of ``mask``, ``box`` and
            ``scribble``; types left out are never drawn.
        max_strokes (int): Most scribble strokes (SPEC: 20).
        brush_width (tuple): Scribble brush width range at ``base_size``.
        base_size (int): Side length at which ``brush_width`` and ``click_radius`` hold.
        target_prompt_probs (dict): Relative probabilities of ``click``,
            ``target_box`` and ``target_scribble`` for the prompts on the target.
        num_clicks (tuple): Smallest and largest number of clicks (inclusive); a
            test config fixes it, e.g. ``(1, 1)`` for mIoU after one click.
        click_radius (float): Radius of a click's disk at ``base_size``.
        box_jitter (float): Largest edge jitter of a ``target_box``, as a fraction of
            the box's side.
        distractor_prob (float): Probability that the stand-in answer behind the later
            training clicks also covers distractor instances (a prompt's
            ``distractor_map``, see :func:`~.clicks.simulate_clicks`).
    """

    def __init__(
        self,
        prompt_probs: Dict[str, float] = dict(mask=1.0, box=1.0, scribble=1.0),
        max_strokes: int = 20,
        brush_width: Tuple[float, float] = (2.5, 10.0),
        base_size: int = 480,
        target_prompt_probs: Dict[str, float] = dict(click=1.0, target_box=1.0, target_scribble=1.0),
        num_clicks: Tuple[int, int] = (1, 5),
        click_radius: float = 5.0,
        box_jitter: float = 0.1,
        distractor_prob: float = 0.5,
    ):
        self.types, self.probs = self._choices(prompt_probs, VISUAL_PROMPT_TYPES, 'prompt_probs')
        drawable = tuple(t for t in TARGET_PROMPT_TYPES if t != 'neg_click')
        self.target_types, self.target_probs = self._choices(target_prompt_probs, drawable, 'target_prompt_probs')
        self.max_strokes = max_strokes
        self.brush_width = tuple(brush_width)
        self.base_size = base_size
        if not (1 <= num_clicks[0] <= num_clicks[1]):
            raise ValueError(f'num_clicks must be (min, max) with 1 <= min <= max, got {num_clicks}')
        self.num_clicks = tuple(int(n) for n in num_clicks)
        self.click_radius = float(click_radius)
        if not 0 <= box_jitter < 0.5:
            raise ValueError(f'box_jitter must be in [0, 0.5), got {box_jitter}')
        self.box_jitter = float(box_jitter)
        if not 0 <= distractor_prob <= 1:
            raise ValueError(f'distractor_prob must be in [0, 1], got {distractor_prob}')
        self.click_sim = dict(distractor_prob=float(distractor_prob))

    @staticmethod
    def _choices(probs: Dict[str, float], allowed: Tuple[str, ...], name: str):
        unknown = set(probs) - set(allowed)
        if unknown or not probs or min(probs.values()) < 0 or sum(probs.values()) <= 0:
            raise ValueError(f'{name} must map {allowed} to non-negative weights, got {probs}')
        types = list(probs)
        weights = np.array([probs[t] for t in types], dtype=np.float64)
        return types, weights / weights.sum()

    def transform(self, results: dict) -> dict:
        seed = results.get('prompt_seed')
        rng = np.random.default_rng(seed if seed is not None else np.random.randint(0, 2**31 - 1))
        prompts, prompt_type = [], None
        for prompt in results.get('visual_prompts', []):
            prompts.append(prompt)
            if prompt.get('on_target'):
                prompts.extend(self._target_prompt(prompt, rng, results))
                continue
            if 'prompt_map' in prompt:  # drawn by a user (an inference request): kept as drawn
                continue
            if not (prompt.get('shot') and prompt_type):  # the further shots of a prompt share its type
                prompt_type = prompt.get('prompt_type') or self.types[int(rng.choice(len(self.types), p=self.probs))]
            mask = prompt['ref_mask']
            if not mask.any():
                raise OmniDataError(
                    f'{results.get("record_id")}: reference annotation {prompt.get("ann_id")} '
                    'has no pixel left after the geometric transforms'
                )
            if prompt_type == 'mask':
                prompt_map = (mask > 0).astype(np.uint8)
            elif prompt_type == 'box':
                prompt_map = box_prompt(mask)
            elif prompt_type == 'scribble':
                prompt_map = scribble_prompt(mask, rng, self.max_strokes, self.brush_width, self.base_size)
            else:
                raise ValueError(f'unknown prompt type {prompt_type!r}')
            prompt.update(prompt_type=prompt_type, prompt_map=prompt_map)
        if 'visual_prompts' in results:
            results['visual_prompts'] = prompts
        return results

    def _target_prompt(self, prompt: dict, rng: np.random.Generator, results: dict) -> list:
        """Fill a prompt on the target; returns the prompts to insert after it (a ``neg_click``)."""
        prompt_type = prompt.get('prompt_type')
        if 'prompt_map' in prompt and prompt_type in ('target_box', 'target_scribble'):
            return []  # drawn by a user (an inference request): kept as drawn
        if prompt_type is None:
            prompt_type = self.target_types[int(rng.choice(len(self.target_types), p=self.target_probs))]
        if prompt_type not in TARGET_PROMPT_TYPES or prompt_type == 'neg_click':
            raise OmniDataError(
                f'{results.get("record_id")}: a prompt on the target must be click, target_box or '
                f'target_scribble, got {prompt_type!r}'
            )
        mask = prompt['ref_mask']
        if not mask.any() and 'clicks' not in prompt:
            raise OmniDataError(
                f'{results.get("record_id")}: target instance {prompt.get("ann_id")} has no pixel left '
                'after the geometric transforms'
            )
        h, w = mask.shape
        scale = math.sqrt(h * w) / self.base_size
        if prompt_type == 'target_box':
            prompt.update(prompt_type=prompt_type, prompt_map=jittered_box_prompt(mask, rng, self.box_jitter))
            return []
        if prompt_type == 'target_scribble':
            prompt_map = scribble_prompt(mask, rng, self.max_strokes, self.brush_width, self.base_size)
            prompt.update(prompt_type=prompt_type, prompt_map=prompt_map)
            return []
        if 'clicks' in prompt:
            clicks = [(int(x), int(y), bool(p)) for x, y, p in prompt['clicks']]
        else:
            n = int(rng.integers(self.num_clicks[0], self.num_clicks[1] + 1))
            clicks = simulate_clicks(mask, rng, n, distractors=prompt.get('distractor_map'), **self.click_sim)
        try:
            (_, pos_map, pos), *negative = click_prompts(clicks, (h, w), self.click_radius * scale)
        except ValueError as err:
            raise OmniDataError(f'{results.get("record_id")}: {err}') from None
        prompt.update(prompt_type='click', prompt_map=pos_map, clicks=pos)
        return [dict(prompt, prompt_type=t, prompt_map=m, clicks=c) for t, m, c in negative]

    def __repr__(self) -> str:
        probs = dict(zip(self.types, self.probs.round(3).tolist()))
        return f'{type(self).__name__}(prompt_probs={probs}, max_strokes={self.max_strokes})'
