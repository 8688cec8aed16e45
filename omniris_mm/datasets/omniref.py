import os.path as osp
from functools import partial
from typing import List

from mmdet.registry import DATASETS
from mmengine.utils import is_abs

from .base_omni import BaseOmniDataset
from .reference_db import ReferenceDatabase
from .utils import CocoIndex, OmniDataError, load_json, require


@DATASETS.register_module()
class OmniRefDataset(BaseOmniDataset):
    """OmniRef, read from its three official files as they are.

    ``OmniRef.json``, ``instances.json`` and ``SuppImageAnns.json`` are each a dict
    keyed by split name (``text-train``, ``visual-test``, ``omni-test``, ... any key
    is accepted). A record with ``sentences`` is a text record (one sample per
    sentence), one with ``visual_data`` an omni record (text + visual prompt, the
    targets are the union of both), any other a visual record. A targeted visual
    prompt is paired with a reference of its category from another image; a
    no-target one with a reference of a ``supp_cat_ids`` category in
    ``supp_image_id``.

    Args:
        ann_file (str): ``OmniRef.json``.
        split (str): The split key, e.g. ``'visual-test'``.
        instances_file (str): ``instances.json``. Relative to ``data_root``.
        supp_file (str): ``SuppImageAnns.json``. Relative to ``data_root``.
        data_prefix (dict): ``img_path``: folder of the target images.
            ``ref_img_path``: folder of the reference images (defaults to
            ``img_path``).
        **kwargs: :class:`OmniDatasetMixin` and ``BaseDataset`` arguments.
    """

    def __init__(
        self,
        ann_file: str = 'OmniRef.json',
        split: str = 'visual-test',
        instances_file: str = 'instances.json',
        supp_file: str = 'SuppImageAnns.json',
        data_prefix: dict = dict(img_path='images/train2014/'),
        **kwargs,
    ):
        self.split = split
        self.instances_file = instances_file
        self.supp_file = supp_file
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    def _join_prefix(self):
        if self.data_root:
            if not is_abs(self.instances_file):
                self.instances_file = osp.join(self.data_root, self.instances_file)
            if not is_abs(self.supp_file):
                self.supp_file = osp.join(self.data_root, self.supp_file)
        super()._join_prefix()

    def _split_of(self, content, path: str):
        if not isinstance(content, dict):
            raise OmniDataError(f'{path}: expected an object keyed by split name, got {type(content).__name__}')
        if self.split not in content:
            raise OmniDataError(f'{path}: no split {self.split!r}; the file has {sorted(content)}')
        return content[self.split]

    def load_data_list(self) -> List[dict]:
        records = self._split_of(load_json(self.ann_file), self.ann_file)
        if not isinstance(records, list):
            raise OmniDataError(f'{self.ann_file} [{self.split}]: expected a list of records')
        instances = self._split_of(load_json(self.instances_file), self.instances_file)
        self.coco = CocoIndex(instances, f'{self.instances_file} [{self.split}]')
        needs_refs = any(isinstance(r, dict) and ('sentences' not in r or 'visual_data' in r) for r in records)
        if needs_refs:
            ref_prefix = self.data_prefix.get('ref_img_path', self.data_prefix.get('img_path', ''))
            self.ref_dbs['supp'] = ReferenceDatabase.from_supp_anns(
                load_json(self.supp_file), ref_prefix, self.supp_file, self._ref_skip
            )
            # A no-target record names its reference image; when SuppImageAnns has no instance of the
            # chosen categories there, the image's own annotations in instances.json can serve.
            self.ref_dbs['instances'] = partial(
                ReferenceDatabase.from_coco, self.coco, ref_prefix, on_error=self._ref_skip
            )
        data_list = self._parse_records(records, self.parse_record, f'{self.ann_file} [{self.split}]')
        # Keep only what fetching needs: the databases that some sample draws from.
        self.ref_dbs = {k: v for k, v in self.ref_dbs.items() if isinstance(v, ReferenceDatabase)}
        del self.coco
        return data_list

    def parse_record(self, record: dict, where: str) -> List[dict]:
        """The samples of one record: text, omni (``visual_data``) or visual."""
        if isinstance(record, dict) and 'sentences' in record and 'visual_data' not in record:
            return self.text_samples(record, self.coco, where)
        require(record, ('image_id', 'ann_id'), where)
        img = self._image_of(record, self.coco, where)
        if 'visual_data' in record:
            where = f'{where} ref_id={record.get("ref_id")}'
            visual = record['visual_data']
            require(visual, ('image_id', 'ann_id'), f'{where} visual_data')
            if int(visual['image_id']) != int(record['image_id']):
                raise OmniDataError(
                    f'{where}: visual_data is about image {visual["image_id"]}, '
                    f'the text about image {record["image_id"]}'
                )
            visual_targets = self._targets(visual, self.coco, f'{where} visual_data')
            targets = self._union_ids(self._targets(record, self.coco, where), visual_targets)
            query = self._visual_query(visual, visual_targets, f'{where} visual_data')
            return [
                self._sample(img, targets, text, [query], 'omni', f'{where} sent_id={sid}', self.coco)
                for sid, text in self._sentences(record, where)
            ]
        targets = self._targets(record, self.coco, where)
        query = self._visual_query(record, targets, where)
        return [self._sample(img, targets, None, [query], 'visual', where, self.coco)]

    def _visual_query(self, record: dict, targets: list, where: str) -> dict:
        if targets:
            require(record, ('category_id',), where)
            return self._query(
                [record['category_id']], where, exclude_image_id=int(record['image_id']), sources=['supp']
            )
        require(record, ('supp_image_id', 'supp_cat_ids'), f'{where} (no-target visual record)')
        return self._query(
            record['supp_cat_ids'], where, image_id=int(record['supp_image_id']), sources=['supp', 'instances']
        )
