"""Part-level referring samples from a COCO-format file with part categories (PACO's layout)."""

from collections import defaultdict
from typing import Dict, List, Sequence

import numpy as np
from mmdet.registry import DATASETS

from .coco_visual import CocoVisualPromptDataset
from .utils import CocoIndex, OmniDataError, load_json

MODALITIES = ('text', 'visual')


def _plural(word: str) -> str:
    if word.endswith(('s', 'x', 'ch', 'sh')):
        return word + 'es'
    if word.endswith('y') and word[-2:-1] not in 'aeiou':
        return word[:-1] + 'ies'
    return word + 's'


@DATASETS.register_module()
class CocoPartDataset(CocoVisualPromptDataset):
    """Referring samples of object *parts* from a COCO-format file with part categories.

    The expected format is PACO's: one COCO instance file whose categories include part
    categories named ``object:part`` (e.g. ``dog:ear``, ``car:wheel``; the text before the
    separator is the object's name, after it the part's; other categories are objects), and
    whose part annotations carry ``obj_ann_id``, the id of the object annotation they belong to
    (in the same image). A part annotation without ``obj_ann_id`` is used, but cannot be placed
    ("the wheel of the car on the left" needs it); an ``obj_ann_id`` that is not an annotation of
    the same image is an error naming both.

    ``modality='text'``: for every image and part category present, "the ear of the dog" (one
    object of that kind in the image) or "all ears of the dogs" (several), the targets being every
    part of that category in the image; where two or more objects of a kind have that part, "the
    ear of the dog on the left" / "on the right" for the leftmost and rightmost objects' parts;
    where a part name comes with objects of several kinds, "all wheels" (the parts of that name of
    every kind). ``no_target_per_image`` part categories absent from the image give no-target
    texts. ``modality='visual'``: "parts like this": a part of the category marked on another
    image (:class:`CocoVisualPromptDataset` over the part categories; its arguments apply).

    Every sample carries ``granularity='part'`` (the metric's part breakdown). Mix with the object
    sources by ratio (``RatioMultiSourceSampler``), see
    ``configs/omnisegnet/omnisegnet_swinb_stage3_joint-parts.py``.

    Args:
        ann_file (str): The COCO-format file with part categories.
        modality (str): ``'text'`` or ``'visual'``.
        separator (str): Between object and part in a part category's name.
        min_part_area (float): Smallest part area kept as a target or a reference.
        **kwargs: :class:`CocoVisualPromptDataset` arguments (``no_target_per_image``, ``seed``...).
    """

    def __init__(
        self,
        ann_file: str,
        modality: str = 'text',
        separator: str = ':',
        min_part_area: float = 0.0,
        **kwargs,
    ):
        if modality not in MODALITIES:
            raise ValueError(f'modality must be one of {MODALITIES}, got {modality!r}')
        if 'category_ids' in kwargs:
            raise ValueError('CocoPartDataset takes the part categories of its file; category_ids is not an argument')
        self.modality = modality
        self.separator = separator
        self.min_part_area = min_part_area
        kwargs.setdefault('min_ref_area', min_part_area)
        super().__init__(ann_file=ann_file, category_ids=None, **kwargs)

    def _part_names(self, coco: CocoIndex) -> Dict[int, tuple]:
        parts = {}
        for cid, cat in coco.categories.items():
            name = str(cat.get('name', ''))
            if self.separator in name:
                obj, part = (s.strip().replace('_', ' ') for s in name.split(self.separator, 1))
                if not obj or not part:
                    raise OmniDataError(f'{self.ann_file}: part category {cid} has the malformed name {name!r}')
                parts[cid] = (obj, part)
        if not parts:
            raise OmniDataError(
                f'{self.ann_file}: no part category (a name of the form object{self.separator}part); '
                'is this a part-level file?'
            )
        return parts

    def load_data_list(self) -> List[dict]:
        coco = CocoIndex(load_json(self.ann_file), self.ann_file)
        self.parts = self._part_names(coco)
        self._check_links(coco)
        if self.modality == 'visual':
            self.category_ids = sorted(self.parts)
            data_list = super().load_data_list()
        else:
            images = [coco.images[i] for i in sorted(coco.images)]
            data_list = self._parse_records(images, lambda img, w: self._text_samples(coco, img, w), self.ann_file)
        for sample in data_list:
            sample['granularity'] = 'part'
        return data_list

    def _check_links(self, coco: CocoIndex) -> None:
        for ann in coco.anns.values():
            if int(ann['category_id']) not in self.parts or ann.get('obj_ann_id') is None:
                continue
            obj = coco.anns.get(int(ann['obj_ann_id']))
            if obj is None or int(obj['image_id']) != int(ann['image_id']):
                raise OmniDataError(
                    f'{self.ann_file}: part annotation {ann["id"]} (image {ann["image_id"]}) has obj_ann_id '
                    f'{ann["obj_ann_id"]}, which is not an annotation of that image'
                )

    def _text_samples(self, coco: CocoIndex, img: dict, where: str) -> List[dict]:
        img_id = int(img['id'])
        where = f'{where} image_id={img_id}'
        by_cat = defaultdict(list)
        for ann in coco.anns_by_image.get(img_id, []):
            cat = int(ann['category_id'])
            if cat in self.parts and not ann.get('iscrowd', 0) and float(ann.get('area', 1)) >= self.min_part_area:
                by_cat[cat].append(ann)
        samples = []

        def add(text: str, anns: Sequence[dict], what: str):
            targets = [coco.target(a['id'], img_id, f'{where} {what}') for a in anns]
            samples.append(self._sample(img, targets, text, [], 'text', f'{where} {what}', coco))

        by_name = defaultdict(list)
        for cat in sorted(by_cat):
            obj, part = self.parts[cat]
            anns = by_cat[cat]
            by_name[part].append(cat)
            owners = {int(a['obj_ann_id']) for a in anns if a.get('obj_ann_id') is not None}
            if len(owners) <= 1 and len(anns) == 1:
                add(f'the {part} of the {obj}', anns, f'part category {cat}')
            else:
                add(f'all {_plural(part)} of the {_plural(obj)}', anns, f'part category {cat}')
            if len(owners) >= 2:
                centre = {o: self._centre_x(coco.anns[o]) for o in owners}
                for side, owner in (('left', min(owners, key=centre.get)), ('right', max(owners, key=centre.get))):
                    mine = [a for a in anns if a.get('obj_ann_id') is not None and int(a['obj_ann_id']) == owner]
                    add(f'the {part} of the {obj} on the {side}', mine, f'part category {cat} object {owner}')
        for part, cats in sorted(by_name.items()):
            if len(cats) >= 2:
                add(f'all {_plural(part)}', [a for c in cats for a in by_cat[c]], f'part name {part!r}')
        absent = [c for c in sorted(self.parts) if c not in by_cat]
        rng = np.random.default_rng([self.seed, img_id])
        for cat in rng.permutation(absent)[: self.no_target_per_image] if absent else []:
            obj, part = self.parts[int(cat)]
            add(f'the {part} of the {obj}', [], f'no-target part category {int(cat)}')
        return samples  # (none for an image without parts: not an invalid record)

    @staticmethod
    def _centre_x(ann: dict) -> float:
        x, _, w, _ = (float(v) for v in ann['bbox'])
        return x + w / 2
