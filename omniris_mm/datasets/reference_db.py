"""The reference database: instances that can serve as visual prompts, by category."""

import pickle
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import numpy as np

from .utils import CocoIndex, OmniDataError, check_segmentation, join_img_path, require, xywh_to_xyxy


class ReferenceDatabase:
    """Reference instances grouped by category, for pairing visual prompts.

    Entries are pickled into one byte buffer, as mmengine's ``BaseDataset`` does
    for its data list, so that dataloader workers share them without
    copy-on-read growth (the OmniRef database holds hundreds of thousands of masks).

    Each entry is a dict with ``img_path``, ``img_id``, ``height``, ``width``,
    ``mask`` (COCO segmentation), ``bbox`` (xyxy), ``ann_id`` and ``category_id``.
    """

    def __init__(self, entries: Iterable[dict], source: str = ''):
        self.source = source
        blobs, cats, imgs = [], [], []
        for entry in entries:
            blobs.append(np.frombuffer(pickle.dumps(entry, protocol=4), dtype=np.uint8))
            cats.append(int(entry['category_id']))
            imgs.append(int(entry['img_id']))
        self._addr = np.cumsum([len(b) for b in blobs], dtype=np.int64)
        self._bytes = np.concatenate(blobs) if blobs else np.zeros(0, np.uint8)
        self._img_ids = np.asarray(imgs, dtype=np.int64)
        cats_arr = np.asarray(cats, dtype=np.int64)
        self._by_cat: Dict[int, np.ndarray] = {int(c): np.flatnonzero(cats_arr == c) for c in np.unique(cats_arr)}

    def __len__(self) -> int:
        return len(self._addr)

    @property
    def category_ids(self) -> List[int]:
        return sorted(self._by_cat)

    def __getitem__(self, idx: int) -> dict:
        start = 0 if idx == 0 else int(self._addr[idx - 1])
        return pickle.loads(self._bytes[start : int(self._addr[idx])].tobytes())

    def candidates(
        self, category_id: int, exclude_image_id: Optional[int] = None, image_id: Optional[int] = None
    ) -> np.ndarray:
        """Indices of the entries of ``category_id``, optionally restricted to one
        image or excluding one image."""
        idx = self._by_cat.get(int(category_id), np.zeros(0, np.int64))
        if exclude_image_id is not None:
            idx = idx[self._img_ids[idx] != int(exclude_image_id)]
        if image_id is not None:
            idx = idx[self._img_ids[idx] == int(image_id)]
        return idx

    def has_reference(self, query: dict) -> bool:
        return any(
            len(self.candidates(c, query.get('exclude_image_id'), query.get('image_id'))) for c in query['category_ids']
        )

    def draw(self, query: dict, rng: np.random.Generator) -> Optional[dict]:
        """Draw one reference for ``query``: a category from ``query['category_ids']``
        (in random order, first with candidates), then one of its instances."""
        idx = self.draw_index(query, rng)
        return None if idx is None else self[idx]

    def draw_index(self, query: dict, rng: np.random.Generator) -> Optional[int]:
        """The index of the entry :meth:`draw` returns (the same random draws)."""
        cats = list(query['category_ids'])
        for k in rng.permutation(len(cats)):
            idx = self.candidates(cats[k], query.get('exclude_image_id'), query.get('image_id'))
            if len(idx):
                return int(idx[rng.integers(len(idx))])
        return None

    def draw_more(self, first: int, query: dict, rng: np.random.Generator, k: int) -> List[dict]:
        """Up to ``k`` further references of the category of entry ``first`` (the
        same concept: k-shot exemplars), distinct from it and from each other, never
        from ``query``'s excluded image (the target); a query pinned to one image (the
        release's fixed reference of a no-target sample) pins its first shot only.
        Entries of images not yet used come first, so that the shots show the concept
        in as many images as the database has."""
        cat = int(self[first]['category_id'])
        idx = self.candidates(cat, query.get('exclude_image_id'))
        idx = rng.permutation(idx[idx != first])
        used = {int(self._img_ids[first])}
        fresh, repeat = [], []
        for i in idx:
            img = int(self._img_ids[i])
            (repeat if img in used else fresh).append(int(i))
            used.add(img)
        return [self[i] for i in (fresh + repeat)[:k]]

    @classmethod
    def from_supp_anns(
        cls, supp: dict, img_prefix: str, source: str, on_error: Optional[Callable[[OmniDataError], None]] = None
    ) -> 'ReferenceDatabase':
        """Build from OmniRef's ``SuppImageAnns.json``:
        ``{str(category_id): [{image_id, file_name, height, width, annotations}, ...]}``.
        An invalid entry raises :class:`OmniDataError` naming it or, given ``on_error``
        (a dataset's skip path under ``on_invalid='skip'``), is handed to it and left out."""
        if not isinstance(supp, dict):
            raise OmniDataError(f'{source}: expected an object keyed by category id')

        def entry(cat, item, where):
            require(item, ('image_id', 'file_name', 'height', 'width', 'annotations'), where)
            ann = item['annotations']
            require(ann, ('segmentation',), where)
            check_segmentation(ann, item['height'], item['width'], where)
            return _entry(join_img_path(img_prefix, item['file_name']), item, ann, int(cat))

        items = (
            (cat, item, f'{source} category {cat} entry {i}') for cat, its in supp.items() for i, item in enumerate(its)
        )
        return cls(_checked(entry, items, on_error), source)

    @classmethod
    def from_coco(
        cls,
        coco: CocoIndex,
        img_prefix: str,
        min_area: float = 0.0,
        category_ids: Optional[Sequence[int]] = None,
        on_error: Optional[Callable[[OmniDataError], None]] = None,
    ) -> 'ReferenceDatabase':
        """Every non-crowd instance of a COCO-format set whose area reaches ``min_area``
        (``on_error`` as in :meth:`from_supp_anns`)."""

        def entry(ann, where):
            img = coco.image(ann['image_id'], where)
            check_segmentation(ann, img['height'], img['width'], where)
            return _entry(join_img_path(img_prefix, img['file_name']), img, ann, int(ann['category_id']))

        items = (
            (ann, f'{coco.source} annotation {ann["id"]}')
            for ann in coco.anns.values()
            if not ann.get('iscrowd', 0)
            and float(ann.get('area', 1)) >= min_area
            and (category_ids is None or int(ann['category_id']) in category_ids)
        )
        return cls(_checked(entry, items, on_error), coco.source)


def _checked(make: Callable, items: Iterable[tuple], on_error: Optional[Callable]) -> Iterable[dict]:
    """``make(*item)`` for each item (whose last element names it); an invalid one raises or,
    with ``on_error``, is handed to it."""
    for item in items:
        try:
            yield make(*item)
        except (OmniDataError, KeyError, TypeError, ValueError) as err:
            if not isinstance(err, OmniDataError):
                err = OmniDataError(f'{item[-1]}: malformed entry ({err!r})')
            if on_error is None:
                raise err from None
            on_error(err)


def _entry(img_path: str, img: dict, ann: dict, category_id: int) -> dict:
    img_id = img['image_id'] if 'image_id' in img else img['id']
    return dict(
        img_path=img_path,
        img_id=int(img_id),
        height=int(img['height']),
        width=int(img['width']),
        mask=ann['segmentation'],
        bbox=xywh_to_xyxy(ann['bbox']) if 'bbox' in ann else None,
        ann_id=int(ann.get('id', -1)),
        category_id=category_id,
    )
