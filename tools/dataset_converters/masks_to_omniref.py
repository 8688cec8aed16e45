"""Convert a folder of images, binary mask PNGs and a table of expressions to the OmniRef layout.

    python tools/dataset_converters/masks_to_omniref.py IMAGES_DIR MASKS_DIR EXPRESSIONS OUT_DIR \\
        [--default-category object] [--link-images] [--omni-per-image 0] [--seed 0]

The home-made layout most users start from: ``IMAGES_DIR`` holds the images, ``MASKS_DIR`` one PNG per
object (0 = background, one other value = the object; same size as its image), and ``EXPRESSIONS`` is
a CSV with a header row, or a JSON list of objects, with the keys

- ``image``: a file name in IMAGES_DIR;
- ``masks``: the objects the expression refers to, mask file names in MASKS_DIR separated by ``;``
  (a list in JSON); empty = the expression refers to nothing in the image (a no-target sample);
- ``expression``: the text;
- ``split`` (optional, default ``train``): ``train``, ``val``, ``test``... all rows of an image in one;
- ``categories`` (optional): one category name per mask, ``;``-separated (a list in JSON); objects
  without one get ``--default-category``. A category lets an object serve as a visual reference.

The objects of an image are all masks its rows name. OUT_DIR gets ``OmniRef.json`` (``text-SPLIT``,
``visual-SPLIT``, ``omni-SPLIT``), ``instances.json``, ``SuppImageAnns.json``, ``instances_SPLIT.json``
(plain COCO, for ``CocoVisualPromptDataset``) and ``images/`` (copies, or links with --link-images),
the layout ``OmniRefDataset`` reads (see ``omniref_layout.py``). Every bad input is an error naming the
row and the file: a missing or unreadable image or mask, a mask of another size than its image, a mask
that is empty or not binary, a mask named under two images or two categories, an image in two splits.
"""

import argparse
import csv
import json
import os
import os.path as osp
import shutil
from typing import Dict, List

import cv2
import numpy as np
import pycocotools.mask as mask_utils
from omniref_layout import write_omniref

COLUMNS = ('image', 'masks', 'expression')


class ConversionError(ValueError):
    """Bad input, with the row and file it was found in."""


def read_rows(path: str) -> List[dict]:
    """The table as dicts with ``where`` (file and row) and list-valued ``masks`` / ``categories``."""
    if not osp.isfile(path):
        raise ConversionError(f'{path}: no such file')
    if path.lower().endswith('.json'):
        with open(path) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as err:
                raise ConversionError(f'{path}: not valid JSON ({err})') from None
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ConversionError(f'{path}: expected a JSON list of objects with keys {COLUMNS}')
        rows = [(f'{path} item {i}', r) for i, r in enumerate(data)]
    else:
        with open(path, newline='') as f:
            reader = csv.DictReader(f)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ConversionError(f'{path}: the header lacks {missing} (it has {reader.fieldnames})')
            rows = [(f'{path} line {i + 2}', r) for i, r in enumerate(reader)]

    def as_list(value):
        if value is None:
            return []
        if isinstance(value, str):
            return [v.strip() for v in value.split(';') if v.strip()]
        return [str(v).strip() for v in value]

    out = []
    for where, row in rows:
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise ConversionError(f'{where}: lacks {missing}')
        text = str(row['expression'] or '').strip()
        if not text:
            raise ConversionError(f'{where}: the expression is empty')
        masks, categories = as_list(row['masks']), as_list(row.get('categories'))
        if categories and len(categories) != len(masks):
            raise ConversionError(f'{where}: {len(categories)} categories for {len(masks)} masks')
        image = str(row['image'] or '').strip()
        if not image:
            raise ConversionError(f'{where}: the image is empty')
        split = str(row.get('split') or 'train').strip()
        out.append(dict(where=where, image=image, masks=masks, categories=categories, text=text, split=split))
    if not out:
        raise ConversionError(f'{path}: no rows')
    return out


def read_mask(path: str, size, where: str) -> np.ndarray:
    if not osp.isfile(path):
        raise ConversionError(f'{where}: mask {path} does not exist')
    mask = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise ConversionError(f'{where}: mask {path} is not a readable image')
    if mask.ndim == 3:
        if mask.shape[2] == 4:  # RGBA: the alpha channel, when it is what is drawn
            mask = mask[..., 3] if np.unique(mask[..., :3]).size == 1 else mask[..., :3]
        if mask.ndim == 3:
            if not (mask == mask[..., :1]).all():
                raise ConversionError(f'{where}: mask {path} is a colour image; expected a binary PNG (0 = background)')
            mask = mask[..., 0]
    if mask.shape != tuple(size):
        raise ConversionError(
            f'{where}: mask {path} is {mask.shape[1]}x{mask.shape[0]} but the image is {size[1]}x{size[0]}'
        )
    values = np.unique(mask)
    if values.size > 2 or (values.size == 2 and values[0] != 0):
        raise ConversionError(
            f'{where}: mask {path} has the values {values[:6].tolist()}{"..." if values.size > 6 else ""}; '
            'expected 0 (background) and one other value (one object per PNG)'
        )
    if values.max() == 0:
        raise ConversionError(f'{where}: mask {path} is empty (no object pixel)')
    return mask > 0


def convert(images_dir: str, masks_dir: str, expressions: str, out_dir: str, default_category: str = 'object',
            link_images: bool = False, omni_per_image: int = 0, seed: int = 0) -> Dict[str, int]:  # fmt: skip
    """Write the OmniRef layout of the home-made one (see the module docstring); the record counts per split."""
    rows = read_rows(expressions)
    by_image: Dict[str, List[dict]] = {}
    for row in rows:
        by_image.setdefault(row['image'], []).append(row)
    mask_owner, mask_category, category_ids = {}, {}, {}
    for row in rows:
        splits = {r['split'] for r in by_image[row['image']]}
        if len(splits) > 1:
            raise ConversionError(f'{row["where"]}: image {row["image"]} has rows in the splits {sorted(splits)}')
        for k, mask in enumerate(row['masks']):
            owner = mask_owner.setdefault(mask, (row['image'], row['where']))
            if owner[0] != row['image']:
                raise ConversionError(
                    f'{row["where"]}: mask {mask} is named for {row["image"]} and ({owner[1]}) for {owner[0]}'
                )
            category = row['categories'][k] if row['categories'] else None
            if category is not None:
                known = mask_category.setdefault(mask, (category, row['where']))
                if known[0] != category:
                    raise ConversionError(
                        f'{row["where"]}: mask {mask} is a {category} here and a {known[0]} in {known[1]}'
                    )
    os.makedirs(osp.join(out_dir, 'images'), exist_ok=True)
    images, ann_id = [], 1
    for img_id, name in enumerate(sorted(by_image), start=1):
        image_rows = by_image[name]
        where = image_rows[0]['where']
        path = osp.join(images_dir, name)
        if not osp.isfile(path):
            raise ConversionError(f'{where}: image {path} does not exist')
        img = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if img is None:
            raise ConversionError(f'{where}: image {path} is not a readable image')
        h, w = img.shape[:2]
        names = list(dict.fromkeys(m for r in image_rows for m in r['masks']))
        anns = []
        for mask_name in names:
            mask = read_mask(osp.join(masks_dir, mask_name), (h, w), mask_owner[mask_name][1])
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            category = mask_category.get(mask_name, (default_category,))[0]
            cat_id = category_ids.setdefault(category, len(category_ids) + 1)
            anns.append(
                dict(
                    id=ann_id,
                    image_id=img_id,
                    category_id=cat_id,
                    segmentation=dict(size=[h, w], counts=rle['counts'].decode()),
                    area=float(mask_utils.area(rle)),
                    bbox=[float(v) for v in mask_utils.toBbox(rle)],
                    iscrowd=0,
                )
            )
            ann_id += 1
        index = {m: i for i, m in enumerate(names)}
        target = osp.join(out_dir, 'images', name)
        os.makedirs(osp.dirname(target), exist_ok=True)
        if osp.lexists(target):
            os.remove(target)
        if link_images:
            os.symlink(osp.abspath(path), target)
        else:
            shutil.copyfile(path, target)
        images.append(
            dict(
                info=dict(id=img_id, file_name=name, height=h, width=w),
                anns=anns,
                expressions=[(r['text'], [index[m] for m in r['masks']]) for r in image_rows],
                split=image_rows[0]['split'],
            )
        )
    categories = [dict(id=i, name=n, supercategory='object') for n, i in category_ids.items()]
    return write_omniref(out_dir, images, categories, np.random.default_rng(seed), omni_per_image=omni_per_image)


def unused_masks(masks_dir: str, expressions: str) -> List[str]:
    named = {m for r in read_rows(expressions) for m in r['masks']}
    found = [osp.relpath(osp.join(d, f), masks_dir) for d, _, fs in os.walk(masks_dir) for f in fs]
    return sorted(f for f in found if f.lower().endswith('.png') and f not in named)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('images_dir')
    parser.add_argument('masks_dir')
    parser.add_argument('expressions', help='a .csv with a header row or a .json list')
    parser.add_argument('out_dir')
    parser.add_argument('--default-category', default='object')
    parser.add_argument('--link-images', action='store_true', help='link the images into OUT_DIR/images, not copy')
    parser.add_argument('--omni-per-image', type=int, default=0, help='text + visual records per image')
    parser.add_argument('--seed', type=int, default=0, help='draws the no-target references and omni pairs')
    args = parser.parse_args()
    try:
        counts = convert(args.images_dir, args.masks_dir, args.expressions, args.out_dir, args.default_category,
                         args.link_images, args.omni_per_image, args.seed)  # fmt: skip
    except ConversionError as err:
        raise SystemExit(f'error: {err}') from None
    unused = unused_masks(args.masks_dir, args.expressions)
    if unused:
        print(
            f'note: {len(unused)} mask file(s) no row names, left out: '
            f'{", ".join(unused[:5])}{" ..." * (len(unused) > 5)}'
        )
    print(f'OmniRef layout written to {args.out_dir}: ' + ', '.join(f'{k} {v}' for k, v in counts.items()))


if __name__ == '__main__':
    main()
