from typing import List, Optional, Sequence

import numpy as np
from mmdet.registry import DATASETS

from .base_omni import BaseOmniDataset
from .reference_db import ReferenceDatabase
from .utils import CocoIndex, OmniDataError, load_json


@DATASETS.register_module()
class CocoVisualPromptDataset(BaseOmniDataset):
    """Visual-prompt samples from any COCO-format instance file.

    For every image and every category present in it (non-crowd instances), one
    targeted sample: the targets are all instances of that category, the visual
    prompt an instance of the same category from another image. For every image,
    ``no_target_per_image`` categories absent from it give no-target samples
    (chosen from ``(seed, image id)``, so the sample list is the same on every run).

    Negative exemplars (``negatives_per_image``): for an image with instances of two
    or more categories, samples whose prompts are a positive reference of one
    category A and a negative exemplar of another category B present in the image,
    both from other images; the targets are A's instances only (B's lie in the image
    and must be left out). The (A, B) pairs of an image are drawn from
    ``(seed, image id, 1)``. In test mode the negative kind's instances in the target
    go with the sample (``excluded``): ``OmniRISMetric`` reports the share of their
    pixels that the answer covers (``excluded``), and ``drop_negatives`` (every
    dataset) scores the same samples with the positive prompt alone.

    Args:
        ann_file (str): COCO-format ``instances.json``.
        data_prefix (dict): ``img_path``: the image folder.
        no_target_per_image (int): No-target samples per image.
        min_ref_area (float): Smallest instance area usable as a reference.
        category_ids (Sequence[int], optional): Restrict to these categories.
        seed (int): Seed of the no-target category choice.
        targeted (bool): Give the targeted samples (one per image and category).
            False with ``no_target_per_image=0`` gives the negative-exemplar samples only.
        negatives_per_image (int): Negative-exemplar samples per image (at most the
            number of ordered category pairs present).
    """

    def __init__(
        self,
        ann_file: str,
        data_prefix: dict = dict(img_path=''),
        no_target_per_image: int = 1,
        min_ref_area: float = 0.0,
        category_ids: Optional[Sequence[int]] = None,
        seed: int = 0,
        targeted: bool = True,
        negatives_per_image: int = 0,
        **kwargs,
    ):
        self.targeted = targeted
        self.negatives_per_image = int(negatives_per_image)
        self.no_target_per_image = no_target_per_image
        self.min_ref_area = min_ref_area
        self.category_ids = None if category_ids is None else [int(c) for c in category_ids]
        self.seed = seed
        super().__init__(ann_file=ann_file, data_prefix=data_prefix, **kwargs)

    def load_data_list(self) -> List[dict]:
        coco = CocoIndex(load_json(self.ann_file), self.ann_file)
        refs = ReferenceDatabase.from_coco(
            coco, self.data_prefix.get('img_path', ''), self.min_ref_area, self.category_ids, self._ref_skip
        )
        if not len(refs):
            raise OmniDataError(f'{self.ann_file}: no instance can serve as a reference')
        self.ref_dbs['instances'] = refs
        images = [coco.images[i] for i in sorted(coco.images)]
        return self._parse_records(images, lambda img, where: self._image_samples(coco, img, where), self.ann_file)

    def _image_samples(self, coco: CocoIndex, img: dict, where: str) -> List[dict]:
        img_id = int(img['id'])
        where = f'{where} image_id={img_id}'
        by_cat, present = {}, set()
        for ann in coco.anns_by_image.get(img_id, []):
            cat = int(ann['category_id'])
            present.add(cat)
            if ann.get('iscrowd', 0) or (self.category_ids is not None and cat not in self.category_ids):
                continue
            by_cat.setdefault(cat, []).append(ann)
        samples, servable = [], []
        for cat in sorted(by_cat):
            cat_where = f'{where} category_id={cat}'
            query = dict(category_ids=[cat], exclude_image_id=img_id, image_id=None)
            if not self.ref_db('instances').has_reference(query):
                # Generated, not an annotated record: a category seen in one image only has no
                # reference elsewhere. Counted and logged through the skip path.
                self.skipped.append(f'{cat_where}: no reference of this category in another image')
                continue
            servable.append(cat)
            if not self.targeted:
                continue
            targets = [coco.target(ann['id'], img_id, cat_where) for ann in by_cat[cat]]
            samples.append(
                self._sample(
                    img,
                    targets,
                    None,
                    [self._query([cat], cat_where, exclude_image_id=img_id)],
                    'visual',
                    cat_where,
                    coco,
                )
            )
        pairs = [(a, b) for a in servable for b in servable if a != b]
        rng = np.random.default_rng([self.seed, img_id, 1])
        for k in rng.permutation(len(pairs))[: self.negatives_per_image]:
            pos, neg = pairs[int(k)]
            pair_where = f'{where} category_id={pos} negative category_id={neg}'
            targets = [coco.target(ann['id'], img_id, pair_where) for ann in by_cat[pos]]
            queries = [
                self._query([pos], pair_where, exclude_image_id=img_id),
                self._query([neg], pair_where, exclude_image_id=img_id, negative=True),
            ]
            sample = self._sample(img, targets, None, queries, 'visual', pair_where, coco)
            if self.test_mode:  # the negative kind's instances in the target, to score what the answer leaves out
                sample['excluded'] = [ann['segmentation'] for ann in by_cat[neg]]
            samples.append(sample)
        absent = [c for c in self.ref_db('instances').category_ids if c not in present]
        rng = np.random.default_rng([self.seed, img_id])
        for cat in rng.permutation(absent)[: self.no_target_per_image]:
            samples.append(
                self._sample(
                    img,
                    [],
                    None,
                    [self._query([int(cat)], where, exclude_image_id=img_id)],
                    'visual',
                    f'{where} no-target category_id={int(cat)}',
                )
            )
        if not samples and (self.targeted or self.no_target_per_image):
            # (With the negative-exemplar samples only, an image of one category has none.)
            raise OmniDataError(f'{where}: the image gives no sample')
        return samples
