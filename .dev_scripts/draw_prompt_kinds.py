"""One picture per prompt kind beyond the release's, from a model and a COCO-format test set.

    python .dev_scripts/draw_prompt_kinds.py CONFIG CHECKPOINT [--out docs/prompt_kinds.jpg] \\
        [--ann-file data/omnishapes/instances_test.json] [--img-dir data/omnishapes/images]

Picks its examples from the instance file, deterministically (the first images that qualify), and
draws each with the inferencer's pictures (``OmniRISVisualizer``), stacked with a caption:

1. clicks on the target: the first click at the centre of a shape whose kind appears twice, then one
   more click where the interactive loop puts it (the centre of the largest error region), answered
   again with ``inferencer.refine``;
2. a box on the target (the shape's tight box);
3. a scribble on the target (``scribble_prompt`` of the shape's mask, seeded);
4. three exemplars of one kind from three other images (k-shot);
5. a positive exemplar of one kind and a negative one of another kind that the target shows too.

Prints, per panel, what it drew and the IoU of the answer with the shape or kind it refers to.
"""

import argparse
import os
import os.path as osp
from collections import defaultdict

import cv2
import numpy as np


def iou(pred, gt):
    union = np.logical_or(pred, gt).sum()
    return float(np.logical_and(pred, gt).sum() / union) if union else 1.0


class Examples:
    """The instances of a COCO-format file, per image and per category (pycocotools)."""

    def __init__(self, ann_file, img_dir):
        from pycocotools.coco import COCO

        self.coco = COCO(ann_file)
        self.img_dir = img_dir
        self.images = sorted(self.coco.imgs)

    def path(self, img_id):
        return osp.join(self.img_dir, self.coco.imgs[img_id]['file_name'])

    def anns(self, img_id):
        return [a for a in self.coco.loadAnns(self.coco.getAnnIds(imgIds=img_id)) if not a.get('iscrowd', 0)]

    def mask(self, ann):
        return self.coco.annToMask(ann) > 0

    def kinds(self, img_id):
        out = defaultdict(list)
        for a in self.anns(img_id):
            out[a['category_id']].append(a)
        return out

    def name(self, cat):
        return self.coco.cats[cat]['name']


def panels(inferencer, ex, rng_seed=0):
    """(caption, answer, IoU) per panel."""
    from omniris_mm.datasets.transforms import largest_error_click, scribble_prompt

    def ask(*args, **kwargs):
        return inferencer(*args, **kwargs)['predictions'][0]

    out = []
    # 1. clicks: a shape whose kind the image shows twice (a category-level answer would be wrong)
    img_id, ann = next(
        (i, group[0]) for i in ex.images for group in ex.kinds(i).values() if len(group) >= 2
    )  # fmt: skip
    gt = ex.mask(ann)
    dist = cv2.distanceTransform(np.pad(gt, 1).astype(np.uint8), cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    first = ask(ex.path(img_id), points=[(int(x), int(y), 1)])
    second = largest_error_click(gt, first['union_mask'])
    answer = inferencer.refine(first, second) if second is not None else first
    clicks = 'a positive click' + (f' and a {"positive" if second[2] else "negative"} one' if second else '')
    out.append(
        (
            f'{clicks} on a {ex.name(ann["category_id"])} (IoU {iou(first["union_mask"], gt):.2f} after 1, '
            f'{iou(answer["union_mask"], gt):.2f} after 2)',
            answer,
            iou(answer['union_mask'], gt),
        )
    )
    # 2., 3. a box and a scribble on the target: the next images' first shapes
    later = [i for i in ex.images if i != img_id and ex.anns(i)]
    box_img, scribble_img = later[0], later[1]
    ann = ex.anns(box_img)[0]
    gt = ex.mask(ann)
    ys, xs = np.nonzero(gt)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    answer = ask(ex.path(box_img), target_box=box)
    out.append((f'a box on a {ex.name(ann["category_id"])}', answer, iou(answer['union_mask'], gt)))
    ann = ex.anns(scribble_img)[0]
    gt = ex.mask(ann)
    strokes = scribble_prompt(gt.astype(np.uint8), np.random.default_rng(rng_seed), base_size=128) > 0
    answer = ask(ex.path(scribble_img), target_scribble=strokes)
    out.append((f'a scribble on a {ex.name(ann["category_id"])}', answer, iou(answer['union_mask'], gt)))
    # 4. k-shot: three masks of one kind from three other images
    target = later[2]
    cat = ex.anns(target)[0]['category_id']
    refs = [i for i in ex.images if i != target and cat in ex.kinds(i)][:3]
    prompts = [dict(image=ex.path(i), mask=ex.mask(ex.kinds(i)[cat][0])) for i in refs]
    gt = np.any([ex.mask(a) for a in ex.kinds(target)[cat]], axis=0)
    answer = ask(ex.path(target), visual_prompts=prompts)
    out.append((f'3 exemplars of {ex.name(cat)}s from 3 images', answer, iou(answer['union_mask'], gt)))
    # 5. a negative exemplar: the target shows kinds A and B; a reference of A, a negative one of B
    target = next(i for i in later[3:] if len(ex.kinds(i)) >= 2)
    (a, a_anns), (b, _) = sorted(ex.kinds(target).items())[:2]
    ref_a = next(i for i in ex.images if i != target and a in ex.kinds(i))
    ref_b = next(i for i in ex.images if i not in (target, ref_a) and b in ex.kinds(i))
    prompts = [
        dict(image=ex.path(ref_a), mask=ex.mask(ex.kinds(ref_a)[a][0])),
        dict(image=ex.path(ref_b), mask=ex.mask(ex.kinds(ref_b)[b][0]), negative=True),
    ]
    gt = np.any([ex.mask(x) for x in a_anns], axis=0)
    answer = ask(ex.path(target), visual_prompts=prompts)
    out.append(
        (f'like this {ex.name(a)}, not like that {ex.name(b)} (negative)', answer, iou(answer['union_mask'], gt))
    )
    return out


def stack(pictures, captions, pad=8):
    """The pictures one under another, each under its caption, on white, as wide as the widest."""
    width = max(p.shape[1] for p in pictures)
    rows = []
    for picture, caption in zip(pictures, captions):
        bar = np.full((28, width, 3), 255, np.uint8)
        cv2.putText(bar, caption, (4, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        body = np.full((picture.shape[0], width, 3), 255, np.uint8)
        body[:, : picture.shape[1]] = picture
        rows += [bar, body, np.full((pad, width, 3), 255, np.uint8)]
    return np.concatenate(rows[:-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--ann-file', default='data/omnishapes/instances_test.json')
    parser.add_argument('--img-dir', default='data/omnishapes/images')
    parser.add_argument('--out', default='docs/prompt_kinds.jpg')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()

    from omniris_mm.apis import OmniRISInferencer

    inferencer = OmniRISInferencer(args.config, args.checkpoint, device=args.device)
    drawn = panels(inferencer, Examples(args.ann_file, args.img_dir))
    pictures = []
    for k, (caption, answer, score) in enumerate(drawn):
        print(f'[prompt kinds] {k + 1}. {caption}: IoU {score:.3f}')
        picture = inferencer(answer['inputs'], return_vis=True)['visualization'][0]
        pictures.append(np.ascontiguousarray(picture[..., ::-1]))
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    cv2.imwrite(
        args.out,
        stack(pictures, [f'{k + 1}. {c}' for k, (c, _, _) in enumerate(drawn)]),
        [cv2.IMWRITE_JPEG_QUALITY, 80],
    )
    print(f'[prompt kinds] {len(pictures)} panels in {args.out}')


if __name__ == '__main__':
    main()
