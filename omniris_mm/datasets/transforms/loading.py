from typing import Optional

import numpy as np
from mmcv.transforms import BaseTransform, LoadImageFromFile
from mmdet.datasets.transforms import LoadAnnotations
from mmdet.registry import TRANSFORMS

from ..utils import OmniDataError, decode_mask, read_label_map
from .image_cache import read_image


def _where(results: dict) -> str:
    return results.get('record_id', results.get('img_path', 'sample'))


@TRANSFORMS.register_module()
class LoadOmniAnnotations(LoadAnnotations):
    """mmdet's ``LoadAnnotations`` for the referred instances, made strict.

    mmdet silently ignores an instance whose mask is malformed; in referring
    segmentation that changes the answer, so here it is an error naming the
    record. So is a decoded mask with no pixel, or an image whose size differs
    from its annotation. Adds ``gt_ann_ids``. A crowd region (an instance with
    ``crowd`` True, see the datasets' ``crowd`` argument) is loaded with
    ``gt_ignore_flags`` True: ``PackOmniInputs`` makes it void in the union and
    mmdet's packing puts it in ``ignored_instances``. A sample's ``excluded``
    segmentations (the negative kind's instances, test mode) become ``gt_excluded``,
    their union at the image's size.
    """

    def __init__(self, with_bbox: bool = True, with_mask: bool = True, **kwargs):
        super().__init__(with_bbox=with_bbox, with_mask=with_mask, **kwargs)

    def transform(self, results: dict) -> dict:
        where = _where(results)
        h, w = results['ori_shape']
        if (results.get('height', h), results.get('width', w)) != (h, w):
            raise OmniDataError(
                f'{where}: image {results.get("img_path")} is {h}x{w} but its annotation '
                f'says {results["height"]}x{results["width"]}'
            )
        instances = results.get('instances', [])
        crowd = np.array([bool(inst.get('crowd', False)) for inst in instances], dtype=bool)
        for inst in instances:  # mmdet flags a malformed mask by ignore_flag: start every instance at 0
            inst['ignore_flag'] = 0
        results = super().transform(results)
        ann_ids = [inst.get('ann_id', -1) for inst in instances]
        results['gt_ann_ids'] = np.array(ann_ids, dtype=np.int64)
        if self.with_mask:
            if results['gt_ignore_flags'].any():
                bad = [a for a, f in zip(ann_ids, results['gt_ignore_flags']) if f]
                raise OmniDataError(f'{where}: malformed mask of referred annotation(s) {bad}')
            masks = results['gt_masks']
            if len(masks):
                areas = masks.masks.reshape(len(masks), -1).sum(1)
                if (areas == 0).any():
                    bad = [a for a, area in zip(ann_ids, areas) if area == 0]
                    raise OmniDataError(f'{where}: referred annotation(s) {bad} have an empty mask')
        results['gt_ignore_flags'] = crowd
        if results.get('excluded') is not None:  # the negative kind's instances (test mode), at this size
            excl = np.zeros((h, w), np.uint8)
            for seg in results['excluded']:
                excl |= decode_mask(seg, h, w).astype(np.uint8)
            results['gt_excluded'] = excl
        return results


def _label_map(segmentations: list, h: int, w: int) -> np.ndarray:
    """(h, w) uint8: k where the k-th segmentation is (the last drawn wins), 0 elsewhere."""
    out = np.zeros((h, w), np.uint8)
    for k, segmentation in enumerate(segmentations[:255], start=1):
        out[decode_mask(segmentation, h, w) > 0] = k
    return out


@TRANSFORMS.register_module()
class CachedLoadImageFromFile(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` with the decoded pixels of local files kept in the process.

    The same image, shape and dtype as ``LoadImageFromFile`` with the same arguments; a file read
    again returns a copy of what was decoded, unless it was rewritten since (see ``image_cache``).
    An undecodable file raises :class:`OmniDataError` naming it (None with ``ignore_empty``).
    ``file_client_args`` (deprecated in mmcv) is not taken: use ``backend_args``.

    Args:
        cache_bytes (int): The most decoded bytes the process keeps (shared with
            ``LoadVisualPrompts``; each data-loader worker has its own). Defaults to 256 MiB.
        **kwargs: As in ``LoadImageFromFile``.
    """

    def __init__(self, cache_bytes: int = 256 * 2**20, **kwargs):
        if kwargs.get('file_client_args') is not None:
            raise ValueError('CachedLoadImageFromFile takes backend_args, not the deprecated file_client_args')
        super().__init__(**kwargs)
        self.cache_bytes = cache_bytes

    def transform(self, results: dict) -> Optional[dict]:
        path = results['img_path']
        try:
            img = read_image(path, self.color_type, self.imdecode_backend, self.backend_args, self.cache_bytes)
        except Exception:
            if self.ignore_empty:
                return None
            raise
        if img is None:
            if self.ignore_empty:
                return None
            raise OmniDataError(f'{_where(results)}: image {path} is not a decodable image')
        if self.to_float32:
            img = img.astype(np.float32)
        results['img'] = img
        results['img_shape'] = img.shape[:2]
        results['ori_shape'] = img.shape[:2]
        return results

    def __repr__(self) -> str:
        return f'{super().__repr__()[:-1]}, cache_bytes={self.cache_bytes})'


@TRANSFORMS.register_module()
class LoadVisualPrompts(BaseTransform):
    """Load the reference image of every visual prompt and decode its instance mask.

    Reads ``results['visual_prompts']`` (see ``OmniDatasetMixin``); adds to each
    prompt ``img`` (H, W, 3), ``img_shape``, ``ori_shape`` and ``ref_mask``
    (H, W) uint8. A missing image, a size mismatch or an empty mask raises
    :class:`OmniDataError` naming the file and the record. A prompt with
    ``distractors`` (segmentations, see ``CocoTargetPromptDataset``) also gets
    ``distractor_map`` (H, W) uint8: 0 on the background, k on the k-th distractor
    (the later one where two overlap; at most 255).

    Images are read as stored, ignoring a JPEG's EXIF orientation tag, as the
    target image is in our configs (``LoadImageFromFile(color_type=
    'color_ignore_orientation')``): COCO-format masks are drawn on the stored
    pixels, so one rule keeps an image and its masks aligned whatever the tag.
    Grayscale, CMYK and palette images load as 3-channel BGR.

    Args:
        color_type (str): As in mmcv's ``LoadImageFromFile``. Defaults to
            ``'color_ignore_orientation'``.
        imdecode_backend (str): As in mmcv's ``LoadImageFromFile``.
        backend_args (dict, optional): File backend arguments.
        cache_bytes (int): Keep up to this many bytes of decoded local images in
            the process (see ``image_cache``; shared with
            ``CachedLoadImageFromFile``). Defaults to 0: no cache.
    """

    def __init__(
        self,
        color_type: str = 'color_ignore_orientation',
        imdecode_backend: str = 'cv2',
        backend_args: Optional[dict] = None,
        cache_bytes: int = 0,
    ):
        self.color_type = color_type
        self.imdecode_backend = imdecode_backend
        self.backend_args = backend_args
        self.cache_bytes = cache_bytes

    def read(self, path: str, where: str) -> np.ndarray:
        """The image at ``path`` with this step's decoding settings; :class:`OmniDataError` naming
        ``where`` and the file when it cannot be read or decoded."""
        try:
            img = read_image(path, self.color_type, self.imdecode_backend, self.backend_args, self.cache_bytes)
        except (OSError, ValueError) as err:
            raise OmniDataError(f'{where}: cannot read reference image {path}: {err}') from None
        if img is None:
            raise OmniDataError(f'{where}: reference image {path} is not a decodable image')
        return img

    def transform(self, results: dict) -> dict:
        where = _where(results)
        for prompt in results.get('visual_prompts', []):
            path = prompt['img_path']
            img = self.read(path, where)
            h, w = img.shape[:2]
            if (prompt.get('height', h), prompt.get('width', w)) != (h, w):
                raise OmniDataError(
                    f'{where}: reference image {path} is {h}x{w} but its annotation says '
                    f'{prompt["height"]}x{prompt["width"]}'
                )
            mask = decode_mask(prompt['mask'], h, w)
            if not mask.any():
                raise OmniDataError(f'{where}: reference annotation {prompt.get("ann_id")} in {path} has an empty mask')
            prompt.update(img=img, img_shape=(h, w), ori_shape=(h, w), ref_mask=mask)
            if 'distractors' in prompt:
                prompt['distractor_map'] = _label_map(prompt.pop('distractors'), h, w)
        return results


@TRANSFORMS.register_module()
class LoadFewShotSegMap(BaseTransform):
    """The episode's ground truth from a label map: ``gt_seg_map`` (H, W) uint8 with 1
    where the label is ``results['category_id']``, 0 elsewhere and ``ignore_index``
    where the label is void (VOC's 255), for :class:`FewShotSegMetric`.

    Args:
        ignore_index (int): Void label, kept. Defaults to 255.
        backend_args (dict, optional): File backend arguments.
    """

    def __init__(self, ignore_index: int = 255, backend_args: Optional[dict] = None):
        self.ignore_index = ignore_index
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        label = read_label_map(results['seg_map_path'], self.backend_args)
        gt = (label == results['category_id']).astype(np.uint8)
        gt[label == self.ignore_index] = self.ignore_index
        results['gt_seg_map'] = gt
        return results
