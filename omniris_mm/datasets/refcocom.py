"""RefCOCOm (multi-granularity referring: objects and their parts), read from its release."""

import os.path as osp
import re
from typing import Dict, List, Optional

import mmcv
import numpy as np
from mmdet.registry import DATASETS
from mmengine.fileio import exists, get
from mmengine.logging import print_log
from pycocotools import mask as mask_utils

from .base_omni import BaseOmniDataset
from .utils import OmniDataError, load_json, require

GRANULARITIES = ('object', 'part')
SETTINGS = ('part_only', 'object_part')


def read_binary_mask(path: str, where: str, backend_args: Optional[dict] = None) -> np.ndarray:
    """A binary mask PNG (0/255, or 0/1) as an (H, W) uint8 0/1 array; a named error when the file is
    missing, unreadable, not two-valued or empty."""
    try:
        img = mmcv.imfrombytes(get(path, backend_args=backend_args), flag='unchanged', backend='pillow')
    except (OSError, FileNotFoundError) as err:
        raise OmniDataError(f'{where}: cannot read the mask file {path}: {err}') from None
    if img is None:
        raise OmniDataError(f'{where}: the mask file {path} does not decode')
    if img.ndim == 3:  # a grey mask saved as RGB(A): any channel
        img = img[..., :3].max(-1)
    values = np.unique(img)
    if not set(values.tolist()) <= ({0, 1} if values.max(initial=0) <= 1 else {0, 255}):
        raise OmniDataError(f'{where}: the mask file {path} is not a binary mask (values {values[:8].tolist()} ...)')
    mask = (img > 0).astype(np.uint8)
    if not mask.any():
        raise OmniDataError(f'{where}: the mask file {path} is empty')
    return mask


@DATASETS.register_module()
class RefCocoMDataset(BaseOmniDataset):
    """RefCOCOm (the MRES benchmark), read from its release as it is.

    Layout (``data_root``)::

        annotations/{split}_{setting}.json   split val / testA / testB; setting part_only / object_part
        masks/{segment_id}.png               one binary mask per target (0/255)
        images/train2014/COCO_train2014_*.jpg  (``data_prefix['img_path']``)

    Each annotation file is a JSON list of records: ``img_name`` (the COCO train2014 file name),
    ``segment_id`` (the mask's file stem), ``sentences`` (dicts with ``sent`` and maybe ``sent_id``,
    or plain strings, as some preprocessed copies hold them), usually ``bbox`` and ``cat`` (read,
    not needed: the box is taken from the mask). One text sample per sentence; the target is the
    one mask (the union; the instance list is that mask alone); ``setting`` ``1v1``.

    Every sample carries ``granularity``, ``'part'`` or ``'object'`` (``OmniRISMetric`` breaks the
    figures down by it, as ``part/mIoU``, ``object/cIoU``): from the record's own ``granularity``
    (``'part'``/``'object'``) or ``is_part`` (bool) where it has one; else from the file's setting:
    every target of a ``part_only`` file is a part; in an ``object_part`` file a target is a part
    when its ``segment_id`` is in the sibling ``{split}_part_only.json`` (the release's part
    targets), an object otherwise. Without that sibling file and without tags the granularity is
    not known (None, no breakdown), and this is logged.

    A missing mask file is an error naming the record and the file, at load time; an unreadable,
    non-binary or empty mask and a mask whose size is not the image's are errors when the sample
    is fetched (or logged skips with ``on_invalid='skip'``, see :class:`OmniDatasetMixin`).

    Args:
        ann_file (str): ``annotations/{split}_{setting}.json``.
        setting (str, optional): ``'part_only'`` or ``'object_part'``; None reads it from the file
            name (``..._part_only.json`` / ``..._object_part.json``).
        data_prefix (dict): ``img_path``: the COCO train2014 folder; ``mask_path``: the masks folder.
        check_masks (bool): Check at load time that every mask file exists (one ``exists`` call per
            record; turn off for a slow remote backend).
    """

    def __init__(
        self,
        ann_file: str = 'annotations/val_part_only.json',
        setting: Optional[str] = None,
        data_prefix: dict = dict(img_path='images/train2014/', mask_path='masks/'),
        check_masks: bool = True,
        **kwargs,
    ):
        if setting is not None and setting not in SETTINGS:
            raise ValueError(f'setting must be one of {SETTINGS} or None, got {setting!r}')
        self.setting = setting
        self.check_masks = check_masks
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    def _file_setting(self) -> str:
        if self.setting is not None:
            return self.setting
        stem = osp.splitext(osp.basename(self.ann_file))[0]
        for setting in SETTINGS:
            if stem.endswith('_' + setting):
                return setting
        raise OmniDataError(
            f'{self.ann_file}: cannot tell the setting from the file name (expected {{split}}_part_only.json or '
            "{split}_object_part.json); give setting='part_only' or 'object_part'"
        )

    def _part_ids(self, setting: str) -> Optional[set]:
        """The ``segment_id`` of the part targets of an ``object_part`` file's split, from its
        ``part_only`` sibling; None when there is none."""
        if setting != 'object_part':
            return None
        stem = osp.basename(self.ann_file)
        sibling = osp.join(osp.dirname(self.ann_file), stem.replace('_object_part', '_part_only'))
        if sibling == self.ann_file or not exists(sibling):
            return None
        records = load_json(sibling)
        if not isinstance(records, list):
            raise OmniDataError(f'{sibling}: expected a JSON list of records')
        return {str(r['segment_id']) for r in records if isinstance(r, dict) and 'segment_id' in r}

    def load_data_list(self) -> List[dict]:
        records = load_json(self.ann_file)
        if not isinstance(records, list):
            raise OmniDataError(f'{self.ann_file}: expected a JSON list of records, got {type(records).__name__}')
        setting = self._file_setting()
        part_ids = self._part_ids(setting)
        self._unknown = 0
        data_list = self._parse_records(
            records, lambda r, w: self.parse_record(r, w, setting, part_ids), f'{self.ann_file}'
        )
        if self._unknown:
            print_log(
                f'RefCocoMDataset: {self._unknown} sample(s) of {self.ann_file} have no granularity tag and the '
                'part_only file of their split is not beside it: no part/object breakdown for them',
                logger='current',
                level=30,
            )
        return data_list

    def _granularity(self, record: dict, setting: str, part_ids: Optional[set], where: str) -> Optional[str]:
        if 'granularity' in record:
            if record['granularity'] not in GRANULARITIES:
                raise OmniDataError(
                    f'{where}: granularity must be one of {GRANULARITIES}, got {record["granularity"]!r}'
                )
            return record['granularity']
        if 'is_part' in record:
            return 'part' if record['is_part'] else 'object'
        if setting == 'part_only':
            return 'part'
        if part_ids is not None:
            return 'part' if str(record['segment_id']) in part_ids else 'object'
        return None

    def parse_record(self, record: dict, where: str, setting: str, part_ids: Optional[set]) -> List[dict]:
        require(record, ('img_name', 'segment_id', 'sentences'), where)
        where = f'{where} segment_id={record["segment_id"]}'
        mask_path = osp.join(self.data_prefix.get('mask_path', ''), f'{record["segment_id"]}.png')
        if self.check_masks and not exists(mask_path):
            raise OmniDataError(f'{where}: mask file not found: {mask_path}')
        granularity = self._granularity(record, setting, part_ids, where)
        self._unknown += granularity is None
        digits = re.findall(r'\d+', osp.basename(str(record['img_name'])))
        img = dict(id=int(digits[-1]) if digits else -1, file_name=record['img_name'], height=0, width=0)
        segment_id = record['segment_id']
        target = dict(
            id=int(segment_id) if str(segment_id).isdigit() else -1,
            category_id=int(record['cat']) if str(record.get('cat', '')).isdigit() else -1,
            segmentation=None,  # read from mask_path when the sample is fetched
            bbox=[0, 0, 0, 0],
        )
        samples = []
        for sid, text in self._sentences(record, where):
            sample = self._sample(img, [target], text, [], 'text', f'{where} sent_id={sid}')
            sample.update(mask_path=mask_path, granularity=granularity, refcocom_setting=setting)
            samples.append(sample)
        return samples

    def get_data_info(self, idx: int) -> Dict:
        info = super().get_data_info(idx)
        if 'invalid' in info:
            return info
        mask = read_binary_mask(info['mask_path'], info['record_id'])
        rle = mask_utils.encode(np.asfortranarray(mask))
        x, y, w, h = mask_utils.toBbox(rle).tolist()
        rle['counts'] = rle['counts'].decode('ascii')  # mmdet's LoadAnnotations takes str counts only
        info['height'], info['width'] = mask.shape
        info['instances'][0].update(mask=rle, bbox=[x, y, x + w, y + h])
        return info
