"""Segment what a text and/or visual prompts refer to in one or more target images.

    python tools/demo.py TARGET [TARGET ...] --config CONFIG [--weights CKPT] \\
        [--text "the dog on the left"] \\
        [--visual REF_IMAGE mask REF_MASK.png] [--visual REF_IMAGE box x1,y1,x2,y2] \\
        [--visual REF_IMAGE scribble STROKES.png] [--out-dir outputs/] [--batch-size 4] \
        [--click x,y,1] [--click x,y,0] [--box x1,y1,x2,y2] [--scribble STROKES.png] \
        [--negative REF_IMAGE KIND VALUE]

Every target gets the same prompts (few-shot use: the references are encoded once;
k-shot: several --visual of one concept). --click (1 positive, 0 negative; repeatable),
--box and --scribble are drawn on the target itself and mean that one object (in the
target's pixels; with them, give one target). --negative REF_IMAGE KIND VALUE (as --visual) is a
negative exemplar: the answer leaves out objects like it.
Prints, per target, the no-target decision and the instances with their scores, and
saves a picture per target in --out-dir (references with their prompts beside the
target with its masks).
"""

import argparse
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('targets', nargs='+', help='target image(s)')
    parser.add_argument('--config', required=True)
    parser.add_argument('--weights', help='checkpoint (random weights without it)')
    parser.add_argument('--text')
    parser.add_argument('--visual', nargs=3, action='append', default=[], metavar=('REF_IMAGE', 'KIND', 'VALUE'))
    parser.add_argument('--negative', nargs=3, action='append', default=[], metavar=('REF_IMAGE', 'KIND', 'VALUE'))
    parser.add_argument('--click', action='append', default=[], metavar='X,Y,1|0', help='a click on the target')
    parser.add_argument('--box', metavar='X1,Y1,X2,Y2', help='a box on the target')
    parser.add_argument('--scribble', metavar='STROKES.png', help="strokes on the target (a PNG of the target's size)")
    parser.add_argument('--out-dir', default='outputs/demo')
    parser.add_argument('--device')
    parser.add_argument('--batch-size', type=int, default=1)
    args = parser.parse_args()
    on_target = dict(
        points=[click(c) for c in args.click] or None,
        target_box=numbers(args.box, 4, '--box x1,y1,x2,y2') if args.box else None,
        target_scribble=region(args.scribble, '--scribble') if args.scribble else None,
    )
    if not args.text and not args.visual + args.negative and not any(v is not None for v in on_target.values()):
        parser.error('give --text, --visual and/or a prompt on the target (--click, --box, --scribble)')
    if len(args.targets) > 1 and any(v is not None for v in on_target.values()):
        parser.error('a prompt on the target points at one object of one image: give one target')

    from omniris_mm.apis import OmniRISInferencer

    inferencer = OmniRISInferencer(args.config, args.weights, device=args.device)
    prompts = [visual_prompt(v) for v in args.visual] + [dict(visual_prompt(v), negative=True) for v in args.negative]
    items = [dict(image=t, text=args.text, visual_prompts=prompts, **on_target) for t in args.targets]
    start = time.perf_counter()
    answers = inferencer(items, batch_size=args.batch_size, out_dir=args.out_dir)
    seconds = time.perf_counter() - start
    for target, answer in zip(args.targets, answers):
        if answer['no_target']:
            print(f'{target}: no target (score {answer["no_target_score"]:.2f})')
        else:
            scores = ', '.join(f'{s:.2f}' for s in answer['scores'])
            print(
                f'{target}: {len(answer["scores"])} instance(s) [{scores}], union {int(answer["union_mask"].sum())} px'
            )
    print(
        f'{len(items)} target(s) in {seconds:.2f} s; {inferencer.num_reference_passes} reference pass(es) for '
        f'{len(prompts)} reference(s); pictures in {args.out_dir}'
    )


if __name__ == '__main__':
    main()
