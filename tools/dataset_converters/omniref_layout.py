"""Write images with their instances and expressions in the official OmniRef file layout.

Shared by ``make_omnishapes.py`` (the synthetic set) and ``masks_to_omniref.py`` (a user's folder of
images, mask PNGs and expressions). Given, per image, its COCO ``info``, its COCO ``anns`` and its
``expressions`` (sentence, indices of the referred anns; none = no target), ``write_omniref`` writes

- ``OmniRef.json``: ``text-SPLIT`` (a gRefCOCO-style record per sentence), ``visual-SPLIT`` (a record
  per category present in an image that has a reference in another image, and one no-target record
  per image where a category it lacks appears elsewhere, with ``supp_image_id`` / ``supp_cat_ids``) and
  ``omni-SPLIT`` (up to ``omni_per_image`` text records per image, each with one of its visual records);
- ``instances.json``: the split's COCO instances under each of those split names;
- ``SuppImageAnns.json``: every instance as a reference, keyed by category;
- ``instances_SPLIT.json``: the plain COCO file of each split (for ``CocoVisualPromptDataset`` and
  ``CocoTargetPromptDataset``).

Run as part of those scripts (the folder is on their ``sys.path``), not on its own.
"""

import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np

REF_ANN_KEYS = ('id', 'segmentation', 'bbox', 'area', 'category_id', 'iscrowd')


def write_omniref(
    out_dir: str,
    images: List[dict],
    categories: List[dict],
    rng: np.random.Generator,
    splits: Optional[Sequence[str]] = None,
    omni_per_image: int = 2,
) -> Dict[str, int]:
    """Write the files (see the module docstring); returns the number of records per split name.

    ``images``: dicts with ``info`` (COCO image: id, file_name, height, width), ``anns`` (COCO
    annotations of the image), ``expressions`` (list of (sentence, [indices into anns])) and
    ``split``. ``rng`` draws the no-target references and the omni pairs."""
    splits = list(splits or dict.fromkeys(im['split'] for im in images))
    supp = {}
    for im in images:
        for a in im['anns']:
            info = im['info']
            supp.setdefault(str(a['category_id']), []).append(
                dict(
                    image_id=info['id'],
                    file_name=info['file_name'],
                    height=info['height'],
                    width=info['width'],
                    annotations={k: a[k] for k in REF_ANN_KEYS},
                )
            )
    cats_of = {im['info']['id']: {a['category_id'] for a in im['anns']} for im in images}
    all_cats = [c['id'] for c in categories]
    omniref, instances = {}, {}
    ref_id, sent_id = 1, 1
    for split in splits:
        split_images = [im for im in images if im['split'] == split]
        coco = dict(
            images=[im['info'] for im in split_images],
            annotations=[a for im in split_images for a in im['anns']],
            categories=categories,
        )
        text, visual, omni = [], [], []
        for im in split_images:
            info, anns = im['info'], im['anns']
            img_fields = dict(
                image_id=info['id'], file_name=info['file_name'], height=info['height'], width=info['width']
            )
            for sentence, idx in im['expressions']:
                ids = [anns[i]['id'] for i in idx] or [-1]
                cat_ids = sorted({anns[i]['category_id'] for i in idx}) or [-1]
                text.append(
                    dict(
                        ref_id=ref_id,
                        **img_fields,
                        ann_id=ids,
                        category_id=cat_ids,
                        split=f'text-{split}',
                        sentences=[dict(raw=sentence, sent=sentence, sent_id=sent_id, tokens=sentence.split())],
                    )
                )
                ref_id += 1
                sent_id += 1
            present = sorted(cats_of[info['id']])
            for cat in present:
                if not any(r['image_id'] != info['id'] for r in supp[str(cat)]):
                    continue  # no reference of the category in another image
                visual.append(
                    dict(
                        **img_fields,
                        ann_id=[a['id'] for a in anns if a['category_id'] == cat],
                        category_id=cat,
                        categories=present,
                    )
                )
            absent = [c for c in all_cats if c not in present]
            donors = [i for i, cats in cats_of.items() if i != info['id'] and set(absent) & cats]
            if donors:
                donor = int(donors[int(rng.integers(len(donors)))])
                visual.append(
                    dict(
                        **img_fields,
                        ann_id=[-1],
                        category_id=-1,
                        categories=present,
                        supp_image_id=donor,
                        supp_cat_ids=sorted(set(absent) & cats_of[donor]),
                    )
                )
            img_text = [t for t in text if t['image_id'] == info['id']]
            img_visual = [v for v in visual if v['image_id'] == info['id']]
            if omni_per_image and img_visual:
                for k in rng.permutation(len(img_text))[:omni_per_image]:
                    record = dict(img_text[k], ref_id=ref_id, split=f'omni-{split}')
                    record['visual_data'] = img_visual[int(rng.integers(len(img_visual)))]
                    omni.append(record)
                    ref_id += 1
        for kind, records in (('text', text), ('visual', visual), ('omni', omni)):
            omniref[f'{kind}-{split}'] = records
            instances[f'{kind}-{split}'] = coco
        with open(osp.join(out_dir, f'instances_{split}.json'), 'w') as f:
            json.dump(coco, f)
    for name, content in (('OmniRef.json', omniref), ('instances.json', instances), ('SuppImageAnns.json', supp)):
        with open(osp.join(out_dir, name), 'w') as f:
            json.dump(content, f)
    return {k: len(v) for k, v in omniref.items()}
