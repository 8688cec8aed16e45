"""Segment what a text and/or visual prompts refer to in one or more target images or folders.

    python demo/image_demo.py TARGET [TARGET ...] --model CONFIG_OR_NAME [--weights CKPT] \\
        [--text "the dog on the left"] \\
        [--visual REF_IMAGE mask REF_MASK.png] [--visual REF_IMAGE box x1,y1,x2,y2] \\
        [--visual REF_IMAGE scribble STROKES.png] [--negative REF_IMAGE KIND VALUE] \\
        [--click x,y,1] [--click x,y,0] [--box x1,y1,x2,y2] [--scribble STROKES.png] \\
        [--out-dir outputs/] [--batch-size 4] [--pred-score-thr 0.3] [--show] \\
        [--no-save-vis] [--no-save-pred] [--print-result]

A TARGET is an image or a folder of images. Every target gets the same prompts (few-shot use: the
references are encoded once; k-shot: several --visual of one concept). --click (1 positive, 0
negative; repeatable), --box and --scribble are drawn on the target itself and mean that one
object (in the target's pixels; with them, give one target). --negative REF_IMAGE KIND VALUE (as
--visual) is a negative exemplar: the answer leaves out objects like it. --model is a config file
or a model name of model-index.yml.

Prints, per target, the no-target decision and the instances with their scores; writes a picture
per target to OUT_DIR/vis (references with their prompts beside the target with its masks) and its
answer as JSON (masks as COCO RLE) to OUT_DIR/preds.
"""

import argparse
import os.path as osp
import time

import mmcv


def numbers(value, n, what):
    try:
        out = [float(v) for v in value.split(',')]
    except ValueError:
        out = []
    if len(out) != n:
        raise SystemExit(f'{what}: expected {n} comma-separated numbers, got {value!r}')
    return out


def region(path, what):
    img = mmcv.imread(path, flag='grayscale')
    if img is None:
        raise SystemExit(f'{what}: cannot read {path}')
    return img > 0


def click(value):
    x, y, positive = numbers(value, 3, '--click x,y,1|0')
    if positive not in (0, 1):
        raise SystemExit(f'--click {value}: the third number is 1 (positive) or 0 (negative)')
    return (x, y, int(positive))


def visual_prompt(spec):
    image, kind, value = spec
    if kind == 'box':
        return dict(image=image, box=numbers(value, 4, f'--visual {image} box x1,y1,x2,y2'))
    if kind in ('mask', 'scribble'):
        return {'image': image, kind: region(value, f'--visual {image} {kind}')}
    raise SystemExit(f'--visual {image} {kind}: the prompt kind must be mask, box or scribble')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('targets', nargs='+', help='target image(s) or folder(s) of images')
    parser.add_argument('--model', '--config', dest='model', required=True, help='config file or model name')
    parser.add_argument('--weights', help="checkpoint (the metafile's for a model name; else random weights)")
    parser.add_argument('--text')
    parser.add_argument('--visual', nargs=3, action='append', default=[], metavar=('REF_IMAGE', 'KIND', 'VALUE'))
    parser.add_argument('--negative', nargs=3, action='append', default=[], metavar=('REF_IMAGE', 'KIND', 'VALUE'))
    parser.add_argument('--click', action='append', default=[], metavar='X,Y,1|0', help='a click on the target')
    parser.add_argument('--box', metavar='X1,Y1,X2,Y2', help='a box on the target')
    parser.add_argument('--scribble', metavar='STROKES.png', help="strokes on the target (a PNG of the target's size)")
    parser.add_argument('--out-dir', default='outputs', help='pictures in OUT_DIR/vis, answers in OUT_DIR/preds')
    parser.add_argument('--device', help='cpu, cuda, ... (default: the accelerator when there is one)')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--pred-score-thr', type=float, default=0.3, help='instances drawn from this score up')
    parser.add_argument('--show', action='store_true', help='show each picture in a window')
    parser.add_argument('--no-save-vis', action='store_true', help='write no pictures')
    parser.add_argument('--no-save-pred', action='store_true', help='write no JSON answers')
    parser.add_argument('--print-result', action='store_true', help='log each answer as the inferencer does')
    args = parser.parse_args()
    on_target = dict(
        points=[click(c) for c in args.click] or None,
        target_box=numbers(args.box, 4, '--box x1,y1,x2,y2') if args.box else None,
        target_scribble=region(args.scribble, '--scribble') if args.scribble else None,
    )
    if not args.text and not args.visual + args.negative and not any(v is not None for v in on_target.values()):
        parser.error('give --text, --visual and/or a prompt on the target (--click, --box, --scribble)')
    if args.batch_size < 1:
        parser.error(f'--batch-size must be at least 1, got {args.batch_size}')
    return parser, args, on_target


def main():
    parser, args, on_target = parse_args()
    from omniris_mm.apis import OmniRISInferencer
    from omniris_mm.apis.inferencer import describe, list_images

    targets = [t for target in args.targets for t in (list_images(target) if osp.isdir(target) else [target])]
    if len(targets) > 1 and any(v is not None for v in on_target.values()):
        parser.error('a prompt on the target points at one object of one image: give one target')
    inferencer = OmniRISInferencer(args.model, args.weights, device=args.device)
    prompts = [visual_prompt(v) for v in args.visual] + [dict(visual_prompt(v), negative=True) for v in args.negative]
    start = time.perf_counter()
    results = inferencer(
        targets, text=args.text, visual_prompts=prompts, **on_target, batch_size=args.batch_size,
        out_dir=args.out_dir, no_save_vis=args.no_save_vis, no_save_pred=args.no_save_pred,
        pred_score_thr=args.pred_score_thr, show=args.show, print_result=args.print_result,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    for target, answer in zip(targets, results['predictions']):
        print(f'{target}: {describe(answer)}')
    saved = [
        osp.join(args.out_dir, d) for d, off in (('vis', args.no_save_vis), ('preds', args.no_save_pred)) if not off
    ]
    print(
        f'{len(targets)} target(s) in {seconds:.2f} s; {inferencer.num_reference_passes} reference pass(es) for '
        f'{len(prompts)} reference(s)' + (f'; written to {", ".join(saved)}' if saved else '')
    )


if __name__ == '__main__':
    main()
