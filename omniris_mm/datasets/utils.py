"""Helpers shared by the OmniRIS datasets and transforms: errors, masks, COCO look-ups."""

import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import mmcv
import numpy as np
import pycocotools.mask as mask_utils
from mmengine.fileio import get

from ..structures import (  # noqa: F401  (the shared vocabulary, also named here)
    IGNORE_INDEX,
    NEGATIVE_EXEMPLAR_TYPES,
    NEGATIVE_PROMPT_TYPES,
    SKIPPED_KEY,
    TARGET_PROMPT_TYPES,
    VISUAL_PROMPT_TYPES,
)


class OmniDataError(ValueError):
    """Bad input data. The message always names the file and the record."""


class PromptError(ValueError):
    """A prompt of an inference request that cannot be answered. The message names the input,
    the prompt, what was wrong and what is allowed."""


def load_json(path: str, backend_args: Optional[dict] = None):
    """Read a JSON annotation file, naming the file in any error."""
    try:
        raw = get(path, backend_args=backend_args)
    except FileNotFoundError:
        raise OmniDataError(f'annotation file not found: {path}') from None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise OmniDataError(f'{path} is not valid JSON: {err}') from None


def setting_of(num_prompts: int, num_targets: int) -> str:
    """The OmniRIS setting of a sample: 1v1, 1vN, Nv1, NvN or no-target."""
    if num_targets == 0:
        return 'no-target'
    return ('1' if num_prompts == 1 else 'N') + 'v' + ('1' if num_targets == 1 else 'N')


def target_ann_ids(value: Union[int, Sequence[int], None]) -> List[int]:
    """Referred annotation ids of a record; ``-1`` / ``[-1]`` means no target."""
    if value is None:
        return []
    values = [value] if isinstance(value, (int, np.integer)) else list(value)
    ids = []
    for v in values:
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool):
            raise TypeError(f'ann_id must be an int or a list of ints, got {value!r}')
        if v >= 0 and v not in ids:
            ids.append(int(v))
    return ids


def require(record: dict, keys: Sequence[str], where: str) -> None:
    """Raise :class:`OmniDataError` naming ``where`` if a key is missing."""
    if not isinstance(record, dict):
        raise OmniDataError(f'{where}: expected a JSON object, got {type(record).__name__}')
    missing = [k for k in keys if k not in record]
    if missing:
        raise OmniDataError(f'{where}: missing required key(s) {missing}')


def xywh_to_xyxy(bbox: Sequence[float]) -> List[float]:
    x, y, w, h = (float(v) for v in bbox)
    return [x, y, x + w, y + h]


def decode_mask(segmentation: Union[list, dict], height: int, width: int) -> np.ndarray:
    """Decode a COCO segmentation (polygons, compressed or uncompressed RLE) to an
    ``(height, width)`` uint8 mask with pycocotools."""
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get('counts'), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_utils.decode(rle)


def check_segmentation(ann: dict, height: int, width: int, where: str) -> None:
    """Reject annotations whose mask is empty, malformed or outside the image.

    Cheap checks only (no decoding): run on every record at load time.
    """
    seg = ann.get('segmentation')
    aid = ann.get('id')
    if isinstance(seg, list):
        polys = [p for p in seg if isinstance(p, (list, tuple)) and len(p) >= 6 and len(p) % 2 == 0]
        if not polys:
            raise OmniDataError(f'{where}: annotation {aid} has an empty or malformed polygon mask')
    elif isinstance(seg, dict):
        if 'counts' not in seg or 'size' not in seg:
            raise OmniDataError(f'{where}: annotation {aid} has an RLE mask without counts/size')
        if [int(s) for s in seg['size']] != [int(height), int(width)]:
            raise OmniDataError(
                f'{where}: annotation {aid} mask size {seg["size"]} does not match its image ({height}, {width})'
            )
    else:
        raise OmniDataError(f'{where}: annotation {aid} has no segmentation mask')
    bbox = ann.get('bbox')
    if bbox is not None:
        x, y, w, h = (float(v) for v in bbox)
        if w <= 0 or h <= 0:
            raise OmniDataError(f'{where}: annotation {aid} has an empty box {bbox} (empty mask)')
        tol = 1.0
        if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
            raise OmniDataError(f'{where}: annotation {aid} box {bbox} lies outside its image (w={width}, h={height})')
    if 'area' in ann and float(ann['area']) <= 0:
        raise OmniDataError(f'{where}: annotation {aid} has zero area (empty mask)')


def coco_file_name(image_id: int) -> str:
    """File name of a COCO train2014 image, the naming OmniRef records refer to."""
    return f'COCO_train2014_{int(image_id):012d}.jpg'


class CocoIndex:
    """Look-ups over one COCO-format instance dict, with errors naming ``source``."""

    def __init__(self, instances: dict, source: str):
        require(instances, ('images', 'annotations'), source)
        self.source = source
        self.images: Dict[int, dict] = {}
        for img in instances['images']:
            require(img, ('id', 'height', 'width'), f'{source} image entry')
            self.images[int(img['id'])] = img
        self.anns: Dict[int, dict] = {}
        self.anns_by_image: Dict[int, List[dict]] = {}
        for i, ann in enumerate(instances['annotations']):
            require(ann, ('id', 'image_id', 'category_id', 'segmentation'), f'{source} annotation #{i}')
            self.anns[int(ann['id'])] = ann
            self.anns_by_image.setdefault(int(ann['image_id']), []).append(ann)
        self.categories = {int(c['id']): c for c in instances.get('categories', [])}

    def image(self, image_id: int, where: str) -> dict:
        img = self.images.get(int(image_id))
        if img is None:
            raise OmniDataError(f'{where}: image_id {image_id} is not in {self.source}')
        return img

    def target(self, ann_id: int, image_id: int, where: str) -> dict:
        """A referred annotation, checked to belong to ``image_id`` and to have a valid mask."""
        ann = self.anns.get(int(ann_id))
        if ann is None:
            raise OmniDataError(f'{where}: ann_id {ann_id} is not in {self.source}')
        if int(ann['image_id']) != int(image_id):
            raise OmniDataError(f'{where}: ann_id {ann_id} belongs to image {ann["image_id"]}, not to image {image_id}')
        img = self.image(image_id, where)
        check_segmentation(ann, img['height'], img['width'], where)
        return ann


def join_img_path(prefix: str, file_name: str) -> str:
    return osp.join(prefix, file_name) if prefix else file_name


def read_label_map(path: str, backend_args: Optional[dict] = None) -> np.ndarray:
    """A VOC label PNG as (H, W) uint8 class ids (0 background, 255 void)."""
    try:
        seg = mmcv.imfrombytes(get(path, backend_args=backend_args), flag='unchanged', backend='pillow')
    except OSError as err:
        raise OmniDataError(f'cannot read label map {path}: {err}') from None
    if seg is None or seg.ndim != 2:
        raise OmniDataError(f'{path} is not a single-channel label map')
    return seg
