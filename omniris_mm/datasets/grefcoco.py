import os.path as osp
from typing import List

from mmdet.registry import DATASETS
from mmengine.utils import is_abs

from .base_omni import BaseOmniDataset
from .utils import CocoIndex, OmniDataError, load_json


@DATASETS.register_module()
class GRefCocoDataset(BaseOmniDataset):
    """gRefCOCO: ``grefs(unc).json`` (a list of refs whose ``ann_id`` is a list,
    ``[-1]`` for no target) with COCO's ``instances.json``; one sample per sentence.

    Args:
        ann_file (str): COCO ``instances.json``.
        split_file (str): ``grefs(unc).json``, relative to ``data_root``.
        split (str): ``train``, ``val``, ``testA`` or ``testB``.
        data_prefix (dict): ``img_path``: folder of the COCO train2014 images.
    """

    def __init__(
        self,
        ann_file: str = 'instances.json',
        split_file: str = 'grefs(unc).json',
        split: str = 'val',
        data_prefix: dict = dict(img_path='images/train2014/'),
        **kwargs,
    ):
        self.split_file = split_file
        self.split = split
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    def _join_prefix(self):
        if self.data_root and not is_abs(self.split_file):
            self.split_file = osp.join(self.data_root, self.split_file)
        super()._join_prefix()

    def load_data_list(self) -> List[dict]:
        refs = load_json(self.split_file)
        if not isinstance(refs, list):
            raise OmniDataError(f'{self.split_file}: expected a list of refs')
        coco = CocoIndex(load_json(self.ann_file), self.ann_file)
        refs = [r for r in refs if isinstance(r, dict) and r.get('split') == self.split]
        return self._parse_records(
            refs, lambda r, w: self.text_samples(r, coco, w), f'{self.split_file} [{self.split}]'
        )
