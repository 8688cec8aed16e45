import os.path as osp
from collections import defaultdict
from typing import List, Optional

import numpy as np
from mmdet.registry import DATASETS
from mmengine.fileio import get_text
from mmengine.utils import is_abs
from pycocotools import mask as mask_utils

from .base_omni import BaseOmniDataset
from .utils import OmniDataError, read_label_map

VOC_CLASSES = (
    'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow',
    'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor',
)  # fmt: skip


@DATASETS.register_module()
class Pascal5iDataset(BaseOmniDataset):
    """PASCAL-5i one- and k-shot episodes as visual-prompt samples.

    Fold ``i`` holds the VOC classes ``5i+1 .. 5i+5``. Each episode pairs a query
    image (the target) with a support image of the same class whose class mask is
    the visual prompt (``prompt_type``, default ``'mask'``); the ground truth is the
    query's class mask with VOC's void pixels kept as 255 (``LoadFewShotSegMap``), and
    metainfo ``category_id`` feeds :class:`FewShotSegMetric`.

    Episodes follow the common protocol: ``num_episodes`` (1,000) queries taken in
    turn from the fold's (image, class) list, each with a support drawn from the
    other images of its class by a generator seeded with ``(episode_seed, fold)``, so
    every run (and any number of workers) scores the same episodes. With
    ``num_shots=k`` an episode has ``k`` supports, distinct images of its class: the
    1-shot support first, then ``k - 1`` others drawn by a generator seeded with
    ``(episode_seed, fold, episode)``, so the k-shot episodes are the 1-shot ones
    with more supports (the same queries, and the same first support).

    Data layout (``data_root``)::

        JPEGImages/2007_000033.jpg
        SegmentationClassAug/2007_000033.png      (or SegmentationClass/)
        ImageSets/Segmentation/val.txt            (used when no split_file is given)

    Args:
        fold (int): 0-3.
        split_file (str, optional): The fold's (image, class) list in the common
            ``NAME__CC`` format (one per line, class 1-20), e.g.
            ``splits/pascal/val/fold0.txt``. Without it, the images of
            ``image_list`` are scanned for the fold's classes.
        image_list (str): Image names, one per line (used without ``split_file``).
        num_episodes (int): Episodes to draw. Defaults to 1000.
        episode_seed (int): Seed of the support draw. Defaults to 0.
        prompt_type (str): Visual prompt drawn from the support mask. Defaults to
            ``'mask'`` (the standard setting).
        num_shots (int): Supports per episode (1 or 5 in the common protocol).
            An episode whose class has fewer other images is an error naming it.
        data_prefix (dict): ``img_path`` and ``seg_map_path`` folders.
    """

    METAINFO = dict(classes=VOC_CLASSES)

    def __init__(
        self,
        fold: int,
        split_file: Optional[str] = None,
        image_list: str = 'ImageSets/Segmentation/val.txt',
        num_episodes: int = 1000,
        episode_seed: int = 0,
        prompt_type: str = 'mask',
        data_prefix: dict = dict(img_path='JPEGImages/', seg_map_path='SegmentationClassAug/'),
        **kwargs,
    ):
        if fold not in (0, 1, 2, 3):
            raise ValueError(f'fold must be 0, 1, 2 or 3, got {fold!r}')
        self.fold = fold
        self.fold_classes = list(range(5 * fold + 1, 5 * fold + 6))
        self.split_file = split_file
        self.image_list = image_list
        self.num_episodes = num_episodes
        self.episode_seed = episode_seed
        kwargs.setdefault('test_mode', True)
        super().__init__(data_prefix=data_prefix, prompt_type=prompt_type, **kwargs)

    def _join_prefix(self):
        for name in ('split_file', 'image_list'):
            path = getattr(self, name)
            if path and self.data_root and not is_abs(path):
                setattr(self, name, osp.join(self.data_root, path))
        super()._join_prefix()

    def _pairs(self) -> List[tuple]:
        """The fold's (image name, class) pairs."""
        source = self.split_file or self.image_list
        try:
            lines = [line.strip() for line in get_text(source).splitlines() if line.strip()]
        except OSError as err:
            raise OmniDataError(f'cannot read {source}: {err}') from None
        if self.split_file:
            pairs = []
            for i, line in enumerate(lines):
                name, sep, cls = line.rpartition('__')
                if not sep or not cls.isdigit():
                    raise OmniDataError(f'{source} line {i + 1}: expected NAME__CLASS, got {line!r}')
                pairs.append((name, int(cls)))
            return [p for p in pairs if p[1] in self.fold_classes]
        pairs = []
        for name in lines:
            labels = np.unique(read_label_map(self._seg_path(name)))
            pairs += [(name, int(c)) for c in labels if c in self.fold_classes]
        return pairs

    def _img_path(self, name: str) -> str:
        return osp.join(self.data_prefix.get('img_path', ''), name + '.jpg')

    def _seg_path(self, name: str) -> str:
        return osp.join(self.data_prefix.get('seg_map_path', ''), name + '.png')

    def load_data_list(self) -> List[dict]:
        source = self.split_file or self.image_list
        pairs = self._pairs()
        if not pairs:
            raise OmniDataError(f'{source}: no image of the fold-{self.fold} classes {self.fold_classes}')
        by_class = defaultdict(list)
        for name, cls in pairs:
            by_class[cls].append(name)
        rng = np.random.default_rng([self.episode_seed, self.fold])
        data_list = []
        for episode in range(self.num_episodes):
            name, cls = pairs[episode % len(pairs)]
            others = [n for n in by_class[cls] if n != name]
            where = f'{source} fold {self.fold} episode {episode} (query {name}, class {cls})'
            if not others:
                raise OmniDataError(f'{where}: no other image of class {cls} to serve as the support')
            support = others[int(rng.integers(len(others)))]
            supports = [support]
            if self.num_shots[0] > 1:
                rest = [n for n in others if n != support]
                if len(rest) < self.num_shots[0] - 1:
                    raise OmniDataError(
                        f'{where}: {self.num_shots[0]}-shot needs {self.num_shots[0]} other images of class '
                        f'{cls}, there are {len(others)}'
                    )
                extra = np.random.default_rng([self.episode_seed, self.fold, episode])
                supports += [rest[i] for i in extra.permutation(len(rest))[: self.num_shots[0] - 1]]
            data_list.append(
                dict(
                    img_path=self._img_path(name),
                    img_id=name,
                    seg_map_path=self._seg_path(name),
                    category_id=cls,
                    instances=[],
                    gt_no_target=False,
                    text=None,
                    supports=[
                        dict(img_path=self._img_path(n), img_id=n, seg_map_path=self._seg_path(n)) for n in supports
                    ],
                    prompt_modality='visual',
                    setting='1v1',
                    record_id=f'{where}, support {" ".join(supports)}',
                )
            )
        return data_list

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        info['visual_prompts'] = [self._support(dict(s, shot=i), info) for i, s in enumerate(info.pop('supports'))]
        return info

    def _support(self, support: dict, info: dict) -> dict:
        label = read_label_map(support['seg_map_path'])
        mask = np.asfortranarray((label == info['category_id']).astype(np.uint8))
        if not mask.any():
            raise OmniDataError(
                f'{info["record_id"]}: the support {support["img_id"]} has no pixel of class {info["category_id"]}'
            )
        rle = mask_utils.encode(mask)
        support.update(
            mask=rle,
            bbox=mask_utils.toBbox(rle).tolist(),
            category_id=info['category_id'],
            ann_id=None,
            prompt_type=self.prompt_type,
            height=label.shape[0],
            width=label.shape[1],
        )
        return support
