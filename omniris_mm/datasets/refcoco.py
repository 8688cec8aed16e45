from typing import List

import mmengine
from mmdet.datasets import RefCocoDataset
from mmdet.registry import DATASETS

from .base_omni import OmniDatasetMixin
from .utils import CocoIndex, OmniDataError, load_json


@DATASETS.register_module()
class RefCocoOmniDataset(OmniDatasetMixin, RefCocoDataset):
    """RefCOCO / RefCOCO+ / RefCOCOg in the OmniRIS sample layout.

    Wraps mmdet's :class:`RefCocoDataset` (same arguments and files: ``refs(unc).p``
    or ``refs(umd).p`` as ``split_file``, COCO ``instances.json`` as ``ann_file``),
    but yields one sample per sentence with its referred instance instead of one
    sample per image, so that every sentence is scored as in the RIS benchmarks.
    """

    def __init__(
        self,
        data_root: str,
        ann_file: str,
        split_file: str,
        data_prefix: dict = dict(img_path='images/train2014/'),
        split: str = 'val',
        **kwargs,
    ):
        super().__init__(
            data_root=data_root,
            ann_file=ann_file,
            split_file=split_file,
            data_prefix=data_prefix,
            split=split,
            text_mode='original',
            **kwargs,
        )

    def load_data_list(self) -> List[dict]:
        try:
            self.splits = mmengine.load(self.split_file, file_format='pkl')
        except FileNotFoundError:
            raise OmniDataError(f'annotation file not found: {self.split_file}') from None
        except Exception as err:
            raise OmniDataError(f'{self.split_file} is not a readable refs pickle: {err!r}') from None
        coco = CocoIndex(load_json(self.ann_file), self.ann_file)
        refs = [r for r in self.splits if isinstance(r, dict) and r.get('split') == self.split]
        return self._parse_records(
            refs, lambda r, w: self.text_samples(r, coco, w), f'{self.split_file} [{self.split}]'
        )
