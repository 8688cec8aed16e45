"""Segment what a text and/or visual prompts refer to in one or more target images.

    python tools/demo.py TARGET [TARGET ...] --config CONFIG [--weights CKPT] \\
        [--text "the dog on the left"] \\
        [--visual REF_IMAGE mask REF_MASK.png] [--visual REF_IMAGE box x1,y1,x2,y2] \\
        [--visual REF_IMAGE scribble STROKES.png] [--out-dir outputs/] [--batch-size 4]

Every target gets the same prompts (few-shot use: the references are encoded once).
Prints, per target, the no-target decision and the instances with their scores, and
saves a picture per target in --out-dir (references with their prompts beside the
target with its masks).
"""

import argparse
import time

import mmcv


def visual_prompt(spec):
    image, kind, value = spec
    if kind == 'box':
        try:
            box = [float(v) for v in value.split(',')]
        except ValueError:
            box = []
        if len(box) != 4:
            raise SystemExit(f'--visual {image} box: expected x1,y1,x2,y2, got {value!r}')
        return dict(image=image, box=box)
    if kind in ('mask', 'scribble'):
        region = mmcv.imread(value, flag='grayscale')
        if region is None:
            raise SystemExit(f'--visual {image} {kind}: cannot read {value}')
        return {'image': image, kind: region > 0}
    raise SystemExit(f'--visual {image} {kind}: the prompt kind must be mask, box or scribble')


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('targets', nargs='+', help='target image(s)')
    parser.add_argument('--config', required=True)
    parser.add_argument('--weights', help='checkpoint (random weights without it)')
    parser.add_argument('--text')
    parser.add_argument('--visual', nargs=3, action='append', default=[], metavar=('REF_IMAGE', 'KIND', 'VALUE'))
    parser.add_argument('--out-dir', default='outputs/demo')
    parser.add_argument('--device')
    parser.add_argument('--batch-size', type=int, default=1)
    args = parser.parse_args()
    if not args.text and not args.visual:
        parser.error('give --text and/or --visual')

    from omniris_mm.apis import OmniRISInferencer

    inferencer = OmniRISInferencer(args.config, args.weights, device=args.device)
    prompts = [visual_prompt(v) for v in args.visual]
    items = [dict(image=t, text=args.text, visual_prompts=prompts) for t in args.targets]
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
