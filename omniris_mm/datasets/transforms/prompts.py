import math
from typing import Dict, Tuple

import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS

from ..utils import VISUAL_PROMPT_TYPES, OmniDataError


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


@TRANSFORMS.register_module()
class SynthesizePromptMaps(BaseTransform):
    """Turn each visual prompt's reference instance mask into its prompt map.

    The prompt type of a prompt is its ``prompt_type`` if the dataset fixed one,
    else drawn with ``prompt_probs``. Randomness comes from the sample's
    ``prompt_seed`` (fixed per sample in test mode), so test-time prompts are the
    same on every run. Adds ``prompt_map`` (H, W) uint8 and sets ``prompt_type``.
    Place it after the geometric transforms so that brush widths are in output
    pixels (they are scaled to the map's size either way).

    Args:
        prompt_probs (dict): Relative probabilities of ``mask``, ``box`` and
            ``scribble``; types left out are never drawn.
        max_strokes (int): Most scribble strokes (SPEC: 20).
        brush_width (tuple): Scribble brush width range at ``base_size``.
        base_size (int): Side length at which ``brush_width`` holds.
    """

    def __init__(
        self,
        prompt_probs: Dict[str, float] = dict(mask=1.0, box=1.0, scribble=1.0),
        max_strokes: int = 20,
        brush_width: Tuple[float, float] = (2.5, 10.0),
        base_size: int = 480,
    ):
        unknown = set(prompt_probs) - set(VISUAL_PROMPT_TYPES)
        if unknown or not prompt_probs or min(prompt_probs.values()) < 0 or sum(prompt_probs.values()) <= 0:
            raise ValueError(f'prompt_probs must map {VISUAL_PROMPT_TYPES} to non-negative weights, got {prompt_probs}')
        self.types = list(prompt_probs)
        weights = np.array([prompt_probs[t] for t in self.types], dtype=np.float64)
        self.probs = weights / weights.sum()
        self.max_strokes = max_strokes
        self.brush_width = tuple(brush_width)
        self.base_size = base_size

    def transform(self, results: dict) -> dict:
        seed = results.get('prompt_seed')
        rng = np.random.default_rng(seed if seed is not None else np.random.randint(0, 2**31 - 1))
        for prompt in results.get('visual_prompts', []):
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
        return results

    def __repr__(self) -> str:
        probs = dict(zip(self.types, self.probs.round(3).tolist()))
        return f'{type(self).__name__}(prompt_probs={probs}, max_strokes={self.max_strokes})'
