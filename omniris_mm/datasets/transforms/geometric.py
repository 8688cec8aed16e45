"""Geometric transforms that move the target image and every reference image together.

Each class runs mmdet's transform on the target as usual and then, on each visual
prompt, the same transform (same flip decision) on a small results dict holding
the reference image and its maps (``ref_mask``, ``prompt_map``) as ``BitmapMasks``,
so a reference and its prompt map can never fall out of alignment. A prompt's ``clicks``
(``[x, y, positive]`` in its image's pixels, as an inference request gives them) move with it.
"""

import re
from typing import Callable

import mmcv
import numpy as np
from mmdet.datasets.transforms import RandomFlip, Resize
from mmdet.registry import TRANSFORMS
from mmdet.structures.mask import BitmapMasks

# distractor_map is a label map (CocoTargetPromptDataset): resized nearest and flipped as masks are.
_PROMPT_MAPS = ('ref_mask', 'prompt_map', 'distractor_map')


def apply_to_references(results: dict, fn: Callable[[dict], None], **extra) -> None:
    """Run ``fn`` on a results dict per reference image, then write the outputs back."""
    for prompt in results.get('visual_prompts', []):
        keys = [k for k in _PROMPT_MAPS if k in prompt]
        h, w = prompt['img'].shape[:2]
        sub = dict(img=prompt['img'], img_shape=(h, w), ori_shape=prompt.get('ori_shape', (h, w)), **extra)
        sub['gt_masks'] = BitmapMasks(
            np.stack([prompt[k] for k in keys]) if keys else np.zeros((0, h, w), np.uint8), h, w
        )
        fn(sub)
        for i, k in enumerate(keys):
            prompt[k] = sub['gt_masks'].masks[i]
        prompt['img'] = sub['img']
        prompt['img_shape'] = sub['img'].shape[:2]
        for k in ('scale_factor', 'flip', 'flip_direction'):
            if k in sub:
                prompt[k] = sub[k]


def _resize_clicks(prompt: dict) -> None:
    """Each click to the output pixel that holds the centre of its input pixel."""
    if not prompt.get('clicks'):
        return
    sx, sy = prompt.get('scale_factor', (1.0, 1.0))
    h, w = prompt['img_shape'][:2]
    prompt['clicks'] = [
        (min(w - 1, int((x + 0.5) * sx)), min(h - 1, int((y + 0.5) * sy)), p) for x, y, p in prompt['clicks']
    ]


def _flip_clicks(prompt: dict, direction: str) -> None:
    if not prompt.get('clicks'):
        return
    h, w = prompt['img_shape'][:2]
    flip_x, flip_y = direction in ('horizontal', 'diagonal'), direction in ('vertical', 'diagonal')
    prompt['clicks'] = [(w - 1 - x if flip_x else x, h - 1 - y if flip_y else y, p) for x, y, p in prompt['clicks']]


@TRANSFORMS.register_module()
class OmniResize(Resize):
    """mmdet's ``Resize`` on the target and, with its own scale, on every reference.

    Args:
        mask_backend (str): Backend of the nearest-neighbour resizing of masks and
            prompt maps: ``'cv2'`` (mmdet's) or ``'pillow'`` (PIL's, which samples
            pixel centres: the release resizes its reference masks so).
        *args, **kwargs: ``Resize`` arguments (``backend='pillow'`` resizes the
            images with PIL's bilinear filter, as the release does).
    """

    def __init__(self, *args, mask_backend: str = 'cv2', **kwargs):
        super().__init__(*args, **kwargs)
        if mask_backend not in ('cv2', 'pillow'):
            raise ValueError(f"mask_backend must be 'cv2' or 'pillow', got {mask_backend!r}")
        self.mask_backend = mask_backend

    def _resize_masks(self, results: dict) -> None:
        masks = results.get('gt_masks')
        if self.mask_backend == 'cv2' or masks is None:
            return super()._resize_masks(results)
        # mmdet's BitmapMasks.resize has no backend argument (always cv2): resize with PIL here.
        h, w = results['img_shape']
        resized = [mmcv.imresize(m, (w, h), interpolation='nearest', backend='pillow') for m in masks.masks]
        results['gt_masks'] = BitmapMasks(np.stack(resized) if resized else np.zeros((0, h, w), np.uint8), h, w)

    def transform(self, results: dict) -> dict:
        results = super().transform(results)
        apply_to_references(results, super().transform)
        for prompt in results.get('visual_prompts', []):
            _resize_clicks(prompt)
        return results


_SWAPS = {
    'horizontal': {'left': 'right', 'right': 'left'},
    'vertical': {
        'top': 'bottom',
        'bottom': 'top',
        'above': 'below',
        'below': 'above',
        'upper': 'lower',
        'lower': 'upper',
    },
}
_SWAPS['diagonal'] = {**_SWAPS['horizontal'], **_SWAPS['vertical']}


def flip_text(text: str, direction: str) -> str:
    """Swap the spatial words a flip reverses ('left' and 'right' for a horizontal
    flip, also in 'leftmost', 'left-hand', ...), keeping their case."""
    swaps = _SWAPS[direction]
    pattern = re.compile(r'\b(' + '|'.join(swaps) + r')(?=(most|ward|wards|hand|side)?\b)', re.IGNORECASE)

    def swap(match):
        word = match.group(1)
        out = swaps[word.lower()]
        return out.upper() if word.isupper() else out.capitalize() if word[0].isupper() else out

    return pattern.sub(swap, text)


@TRANSFORMS.register_module()
class OmniRandomFlip(RandomFlip):
    """mmdet's ``RandomFlip`` that also flips the references with the same decision
    (when ``flip_references``) and swaps 'left' and 'right' in the text, so the
    expression still describes the flipped image."""

    def __init__(self, *args, flip_references: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.flip_references = flip_references

    def _flip(self, results: dict) -> None:
        super()._flip(results)
        if self.flip_references:
            apply_to_references(results, super()._flip, flip=True, flip_direction=results['flip_direction'])
            for prompt in results.get('visual_prompts', []):
                _flip_clicks(prompt, results['flip_direction'])
        if results.get('text'):
            results['text'] = flip_text(results['text'], results['flip_direction'])
