"""The loaders of an inference request: what the inferencer puts in place of a test pipeline's file
loaders, so that the rest of the config's test pipeline (resizing, prompt drawing, packing) runs on
a request exactly as it runs on a test sample.

A request is a results dict with the target (``img``, an array, or ``img_path``), ``text`` and
``request``: the prompts as a user gives them (see :class:`LoadRequestPrompts`). Every prompt is
checked here, once, for every entry point (the Python inferencer, the command-line demo, the web
demo, the ONNX Runtime runner); a bad one raises :class:`PromptError` naming the input
(``record_id``), the prompt and what is allowed.
"""

import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmdet.registry import TRANSFORMS

from ..utils import OmniDataError, PromptError
from .loading import LoadVisualPrompts

REFERENCE_KINDS = ('mask', 'box', 'scribble')
REFERENCE_KEYS = frozenset(('image', 'negative') + REFERENCE_KINDS)
REQUEST_KEYS = ('visual_prompts', 'points', 'target_box', 'target_scribble')


def _where(results: dict) -> str:
    return results.get('record_id') or 'input'


def check_image_array(image, what: str) -> np.ndarray:
    """``image`` as an (H, W, 3) uint8 BGR array (an (H, W) one is taken as grey)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise PromptError(f'{what}: expected an (H, W, 3) uint8 BGR array, got {image.shape} {image.dtype}')
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if 0 in image.shape[:2]:
        raise PromptError(f'{what}: the image is empty ({image.shape[0]}x{image.shape[1]})')
    return image


def _numbers(value, n: int, what: str, form: str) -> List[float]:
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        out = None
    if out is None or len(out) != n or isinstance(value, (str, bytes)):
        raise PromptError(f'{what}: expected {n} numbers {form}, got {value!r}')
    if not all(math.isfinite(v) for v in out):
        raise PromptError(f'{what}: every number of {form} must be finite, got {value!r}')
    return out


def box_region(box, shape: Tuple[int, int], what: str) -> Tuple[np.ndarray, Optional[str]]:
    """The filled (H, W) uint8 region of ``box`` (``x1, y1, x2, y2`` in pixels, clipped to the
    image) and a note when clipping changed it. An inverted box, one of no area or one wholly
    outside the image is an error."""
    x1, y1, x2, y2 = _numbers(box, 4, what, '(x1, y1, x2, y2)')
    h, w = shape
    if not (x2 > x1 and y2 > y1):
        raise PromptError(f'{what}: (x1, y1, x2, y2) must have x2 > x1 and y2 > y1, got {tuple(box)}')
    c1, r1 = max(0, int(x1)), max(0, int(y1))
    c2, r2 = min(w, int(math.ceil(x2))), min(h, int(math.ceil(y2)))
    if c2 <= c1 or r2 <= r1:
        raise PromptError(f'{what}: the box {tuple(box)} lies outside the {w}x{h} image')
    region = np.zeros((h, w), np.uint8)
    region[r1:r2, c1:c2] = 1
    note = None
    if x1 < 0 or y1 < 0 or x2 > w or y2 > h:
        note = f'{what}: the box {tuple(box)} was clipped to the {w}x{h} image: ({c1}, {r1}, {c2}, {r2})'
    return region, note


def region_map(value, shape: Tuple[int, int], what: str, image_name: str) -> np.ndarray:
    """An (H, W) mask or strokes given as an array: uint8 1 where it is > 0."""
    try:
        region = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise PromptError(f'{what}: expected an (H, W) array, got {type(value).__name__}') from None
    if region.ndim == 3 and region.shape[2] == 1:
        region = region[..., 0]
    if region.shape != tuple(shape):
        raise PromptError(f'{what}: it is {region.shape} but {image_name} is {tuple(shape)}: give it at its size')
    if np.isnan(region).any():
        raise PromptError(f'{what}: the array has NaN values')
    region = (region > 0).astype(np.uint8)
    if not region.any():
        raise PromptError(f'{what}: it selects no pixel (no value > 0)')
    return region


def check_clicks(points, shape: Tuple[int, int], what: str) -> List[Tuple[int, int, bool]]:
    """Clicks ``(x, y, 1)`` / ``(x, y, 0)`` inside the image, at least one positive."""
    if isinstance(points, (str, bytes)) or not isinstance(points, Sequence) or not len(points):
        raise PromptError(f'{what}: expected a list of (x, y, 1 or 0) clicks, got {points!r}')
    h, w = shape
    clicks = []
    for k, point in enumerate(points):
        x, y, label = _numbers(point, 3, f'{what} {k}', '(x, y, 1 or 0)')
        if label not in (0.0, 1.0):
            raise PromptError(f'{what} {k}: the third number is 1 (positive) or 0 (negative), got {point[2]!r}')
        if not (0 <= x < w and 0 <= y < h):
            raise PromptError(f'{what} {k}: ({x:g}, {y:g}) lies outside the {w}x{h} image')
        clicks.append((int(min(w - 1, round(x))), int(min(h - 1, round(y))), label == 1.0))
    if not any(p for _, _, p in clicks):
        raise PromptError(f'{what}: clicks on the target need a positive click (x, y, 1), got {list(points)}')
    return clicks


@TRANSFORMS.register_module()
class OmniInferencerLoader(BaseTransform):
    """The target image of a request: an array as it is (``img``: (H, W, 3) uint8 BGR, or (H, W)
    grey), or a path read by the test pipeline's own loader.

    Args:
        loader (dict): The loading step it replaces (e.g. ``CachedLoadImageFromFile`` with its
            colour type and cache), used for paths. Defaults to mmcv's ``LoadImageFromFile``.
    """

    def __init__(self, loader: dict = dict(type='LoadImageFromFile')):
        self.from_file = TRANSFORMS.build(dict(loader))

    def transform(self, results: dict) -> dict:
        where = _where(results)
        if results.get('img') is not None:
            img = check_image_array(results['img'], f'{where}: the target image')
            results.update(img=img, img_shape=img.shape[:2], ori_shape=img.shape[:2])
            results.setdefault('img_path', None)
            return results
        path = results.get('img_path')
        if not isinstance(path, str):
            raise PromptError(f'{where}: the target image must be a path or an array, got {type(path).__name__}')
        try:
            out = self.from_file(results)
        except (OSError, OmniDataError) as err:
            raise FileNotFoundError(f'{where}: cannot read {path} ({err})') from None
        if out is None:
            raise FileNotFoundError(f'{where}: cannot read {path} (not a decodable image)')
        return out


@TRANSFORMS.register_module()
class LoadRequestPrompts(LoadVisualPrompts):
    """The prompts of a request as the test pipeline's prompts: what replaces ``LoadVisualPrompts``
    when the inferencer runs the config's test pipeline (same arguments, same decoding of
    reference images).

    ``results['request']`` holds, all optional:

    - ``visual_prompts``: dicts of ``image`` (the reference: a path or an (H, W, 3) BGR array)
      and exactly one of ``mask`` (an (H, W) array of the reference's size), ``box``
      (``x1, y1, x2, y2`` in its pixels) or ``scribble`` (an (H, W) array of the strokes);
      ``negative=True`` makes it a negative exemplar;
    - ``points``: clicks ``(x, y, 1)`` positive or ``(x, y, 0)`` negative on the target;
    - ``target_box``: ``x1, y1, x2, y2`` on the target;
    - ``target_scribble``: an (H, W) array of strokes of the target's size.

    Masks, boxes and scribbles become the prompts' maps as drawn (``prompt_map``, which
    ``SynthesizePromptMaps`` keeps); clicks stay clicks, drawn by ``SynthesizePromptMaps`` with
    its radius after the resize, as in training. A box partly outside its image is clipped and
    the note is kept in ``prompt_notes``; anything else wrong raises :class:`PromptError`.
    """

    def transform(self, results: dict) -> dict:
        where = _where(results)
        request = dict(results.pop('request', None) or {})
        unknown = sorted(set(request) - set(REQUEST_KEYS))
        if unknown:
            raise PromptError(f'{where}: unknown prompt argument(s) {unknown}; allowed: {list(REQUEST_KEYS)}')
        text = results.get('text')
        if text is not None and not isinstance(text, str):
            raise PromptError(f'{where}: the text must be a string, got {type(text).__name__}')
        results['text'] = text.strip() if text and text.strip() else None
        notes: List[str] = []
        prompts = []
        visual = request.get('visual_prompts') or []
        if isinstance(visual, dict) or not isinstance(visual, Sequence):
            raise PromptError(f'{where}: visual_prompts must be a list of dicts, got {type(visual).__name__}')
        for j, spec in enumerate(visual):
            prompts.append(self._reference(spec, f'{where} visual prompt {j}', notes))
        prompts += self._on_target(results, request, where, notes)
        positive = results['text'] is not None or any(not p.get('negative') for p in prompts)
        if not prompts and results['text'] is None:
            raise PromptError(f'{where}: give a text, visual prompts and/or prompts on the target')
        if not positive:
            raise PromptError(
                f'{where}: a negative exemplar only takes away from an answer: give a text, a positive '
                'reference or a prompt on the target with it'
            )
        results['visual_prompts'] = prompts
        results['prompt_notes'] = notes
        return results

    def _reference(self, spec, what: str, notes: List[str]) -> dict:
        if not isinstance(spec, dict):
            raise PromptError(f'{what}: expected a dict of image= and one of {REFERENCE_KINDS}, got {spec!r}')
        unknown = sorted(set(spec) - REFERENCE_KEYS)
        kinds = [k for k in REFERENCE_KINDS if spec.get(k) is not None]
        if unknown or len(kinds) != 1 or spec.get('image') is None:
            raise PromptError(
                f'{what}: give image= and exactly one of {REFERENCE_KINDS} (and negative=True for a negative '
                f'exemplar), got {sorted(spec)}'
            )
        kind, source = kinds[0], spec['image']
        if isinstance(source, str):
            img, path = self.read(source, what), source
        else:
            img, path = check_image_array(source, f'{what}: the reference image'), None
        h, w = img.shape[:2]
        if kind == 'box':
            prompt_map, note = box_region(spec['box'], (h, w), f'{what} box')
            if note:
                notes.append(note)
        else:
            prompt_map = region_map(spec[kind], (h, w), f'{what} {kind}', 'the reference image')
        negative = spec.get('negative', False)
        if not isinstance(negative, (bool, np.bool_)):
            raise PromptError(f'{what}: negative must be True or False, got {negative!r}')
        out = dict(img=img, img_path=path, img_shape=(h, w), ori_shape=(h, w), ref_mask=prompt_map.copy(),
                   prompt_map=prompt_map, prompt_type=kind)  # fmt: skip
        if negative:  # the tokens are the same; the type embedding says "not like this"
            out['negative'] = True
        return out

    @staticmethod
    def _on_target(results: dict, request: dict, where: str, notes: List[str]) -> List[dict]:
        img = results['img']
        h, w = img.shape[:2]
        base = dict(img=img, img_path=results.get('img_path'), img_shape=(h, w), ori_shape=(h, w), on_target=True)
        prompts = []
        if request.get('points') is not None:
            clicks = check_clicks(request['points'], (h, w), f'{where} points: click')
            prompts.append(dict(base, ref_mask=np.zeros((h, w), np.uint8), prompt_type='click', clicks=clicks))
        if request.get('target_box') is not None:
            region, note = box_region(request['target_box'], (h, w), f'{where} target_box')
            if note:
                notes.append(note)
            prompts.append(dict(base, ref_mask=region.copy(), prompt_map=region, prompt_type='target_box'))
        if request.get('target_scribble') is not None:
            region = region_map(request['target_scribble'], (h, w), f'{where} target_scribble', 'the target image')
            prompts.append(dict(base, ref_mask=region.copy(), prompt_map=region, prompt_type='target_scribble'))
        return prompts
