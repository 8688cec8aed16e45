"""Write small part-level sets from a COCO-format sample: RefCOCOm's release layout and a PACO-style file.

Real images and real object masks (e.g. ``../shared/data/coco_val2017_sample``); the *parts* are derived
from the object masks, since no real part masks are at hand: a person's "head" is the top fifth of its
mask (by its box), an animal's "legs" the bottom third, any other object's "top" its top quarter. They are
regions of real masks with real boundaries on the sides, good for schema, pipeline and metric tests; they
are not PACO's or RefCOCOm's annotations, and no score on them means anything about a model.

- ``build_refcocom(src, out)``: ``out/annotations/{val,testA,testB}_{part_only,object_part}.json``,
  ``out/masks/{segment_id}.png`` (0/255) and ``out/images/train2014/COCO_train2014_{id:012d}.jpg``, as
  the RefCOCOm release has them (see ``RefCocoMDataset``). The objects (non-crowd, at least ``min_area``
  pixels) are dealt to the three splits in turn; each split's ``part_only`` file holds their parts, its
  ``object_part`` file the objects and the same parts (the same ``segment_id``). Sentences come both as
  dicts (``sent``, ``sent_id``) and, in every other record, as plain strings, as preprocessed copies hold
  them; ``bbox`` and ``cat`` are written on every record but one.
Stuff categories (``isthing`` 0, or ids over 90 where there is no such flag) are left out.

- ``build_paco(src, out)``: ``out/instances_parts.json``, the source file plus part categories named
  ``object:part`` (``supercategory`` the object's name) and one part annotation per object, linked to it
  by ``obj_ann_id``; images are read from the source folder.

Usage: python tools/dataset_converters/make_part_samples.py SRC OUT [--paco]
"""

import argparse
import json
import os
import os.path as osp
import shutil

import cv2
import numpy as np
import pycocotools.mask as mask_utils

ANIMALS = {'horse', 'dog', 'cat', 'cow', 'sheep', 'elephant', 'bear', 'zebra', 'giraffe'}
SPLITS = ('val', 'testA', 'testB')
OBJECT_SEGMENT = 1_000_000  # segment_id of an object: this + its COCO annotation id
PART_SEGMENT = 2_000_000  # of its derived part


def part_of(name: str):
    """The derived part of an object of category ``name``: (part name, the band of the box as (from, to)
    fractions of its height)."""
    if name == 'person':
        return 'head', (0.0, 0.2)
    if name in ANIMALS:
        return 'leg', (2 / 3, 1.0)
    return 'top', (0.0, 0.25)


def derived_part(mask: np.ndarray, bbox, band) -> np.ndarray:
    """The rows of ``mask`` in ``band`` of its box ``bbox`` (xywh)."""
    y0, h = bbox[1], bbox[3]
    top, bottom = int(np.floor(y0 + band[0] * h)), int(np.ceil(y0 + band[1] * h))
    part = np.zeros_like(mask)
    part[top:bottom] = mask[top:bottom]
    return part


def _objects(src: str, min_area: float):
    with open(osp.join(src, 'instances.json')) as f:
        coco = json.load(f)
    # Objects, not stuff: COCO's thing categories have ids 1-90 (the panoptic sample's stuff, 92-200, has no
    # isthing flag).
    names = {c['id']: c['name'] for c in coco['categories'] if c.get('isthing', int(c['id']) <= 90)}
    images = {i['id']: i for i in coco['images']}
    objects = []
    for ann in sorted(coco['annotations'], key=lambda a: a['id']):
        if ann.get('iscrowd', 0) or ann['area'] < min_area or ann['category_id'] not in names:
            continue
        img = images[ann['image_id']]
        mask = mask_utils.decode(ann['segmentation']) if isinstance(ann['segmentation'], dict) else None
        if mask is None:
            rle = mask_utils.merge(mask_utils.frPyObjects(ann['segmentation'], img['height'], img['width']))
            mask = mask_utils.decode(rle)
        part_name, band = part_of(names[ann['category_id']])
        part = derived_part(mask, ann['bbox'], band)
        if part.sum() < 20:
            continue
        objects.append(
            dict(ann=ann, img=img, name=names[ann['category_id']], mask=mask, part=part, part_name=part_name)
        )
    return coco, objects


def _side(bbox, width: int) -> str:
    return 'left' if bbox[0] + bbox[2] / 2 < width / 2 else 'right'


def _bbox(mask: np.ndarray):
    return [float(v) for v in mask_utils.toBbox(mask_utils.encode(np.asfortranarray(mask)))]


def build_refcocom(src: str, out: str, min_area: float = 1500.0) -> dict:
    """Write the RefCOCOm-layout sample; returns ``{file name: records}``."""
    _, objects = _objects(src, min_area)
    os.makedirs(osp.join(out, 'annotations'), exist_ok=True)
    os.makedirs(osp.join(out, 'masks'), exist_ok=True)
    os.makedirs(osp.join(out, 'images', 'train2014'), exist_ok=True)
    for img in {o['img']['id']: o['img'] for o in objects}.values():
        name = f'COCO_train2014_{img["id"]:012d}.jpg'
        shutil.copyfile(osp.join(src, img['file_name']), osp.join(out, 'images', 'train2014', name))
    files = {f'{s}_{t}.json': [] for s in SPLITS for t in ('part_only', 'object_part')}
    sent_id = 0
    for k, obj in enumerate(objects):
        split = SPLITS[k % len(SPLITS)]
        ann, img = obj['ann'], obj['img']
        side = _side(ann['bbox'], img['width'])
        records = []
        for granularity, mask, texts in (
            ('object', obj['mask'], [f'the {obj["name"]} on the {side}', f'{obj["name"]} {side}']),
            ('part', obj['part'], [f'the {obj["part_name"]} of the {obj["name"]} on the {side}']),
        ):
            segment_id = (OBJECT_SEGMENT if granularity == 'object' else PART_SEGMENT) + ann['id']
            cv2.imwrite(osp.join(out, 'masks', f'{segment_id}.png'), mask.astype(np.uint8) * 255)
            if k % 2:  # plain strings, as some preprocessed copies hold them
                sentences = list(texts)
            else:
                sentences = [dict(sent=t, sent_id=sent_id + i) for i, t in enumerate(texts)]
            sent_id += len(texts)
            record = dict(img_name=f'COCO_train2014_{img["id"]:012d}.jpg', segment_id=segment_id, sentences=sentences)
            if k:  # the first record has neither (optional in the release)
                record.update(bbox=_bbox(mask), cat=ann['category_id'])
            records.append((granularity, record))
        for granularity, record in records:
            files[f'{split}_object_part.json'].append(record)
            if granularity == 'part':
                files[f'{split}_part_only.json'].append(record)
    for name, records in files.items():
        with open(osp.join(out, 'annotations', name), 'w') as f:
            json.dump(records, f)
    return files


def build_paco(src: str, out: str, min_area: float = 1500.0) -> str:
    """Write ``out/instances_parts.json`` (PACO-style parts over the source's images); returns its path."""
    coco, objects = _objects(src, min_area)
    names = {c['id']: c['name'] for c in coco['categories']}  # every category, for the new ids
    part_cats, anns = {}, []
    next_cat = max(names) + 1
    next_id = max(a['id'] for a in coco['annotations']) + 1
    for obj in objects:
        key = f'{obj["name"]}:{obj["part_name"]}'
        if key not in part_cats:
            part_cats[key] = dict(id=next_cat, name=key, supercategory=obj['name'])
            next_cat += 1
        rle = mask_utils.encode(np.asfortranarray(obj['part']))
        anns.append(
            dict(
                id=next_id,
                image_id=obj['img']['id'],
                category_id=part_cats[key]['id'],
                segmentation=dict(size=rle['size'], counts=rle['counts'].decode('ascii')),
                area=float(mask_utils.area(rle)),
                bbox=[float(v) for v in mask_utils.toBbox(rle)],
                iscrowd=0,
                obj_ann_id=obj['ann']['id'],
            )
        )
        next_id += 1
    result = dict(
        coco, categories=coco['categories'] + list(part_cats.values()), annotations=coco['annotations'] + anns
    )
    os.makedirs(out, exist_ok=True)
    path = osp.join(out, 'instances_parts.json')
    with open(path, 'w') as f:
        json.dump(result, f)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='a COCO-format folder: instances.json and the images')
    parser.add_argument('out')
    parser.add_argument('--paco', action='store_true', help='write the PACO-style file instead')
    args = parser.parse_args()
    if args.paco:
        print(build_paco(args.src, args.out))
    else:
        files = build_refcocom(args.src, args.out)
        for name, records in files.items():
            print(f'{name}: {len(records)} records, {sum(len(r["sentences"]) for r in records)} sentences')


if __name__ == '__main__':
    main()
