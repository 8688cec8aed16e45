"""Where a training step of a config goes: loading, each module's forward, backward, the update.

Builds the config's model, optimizer wrapper and training data loader as ``tools/train.py`` does
(no checkpoint, nothing written but mmengine's log folder), runs ``--warmup`` + ``--iters`` steps
and prints medians in ms: the batch's loading, the data preprocessor and the forward pass, the
forward time of every module down to ``--depth`` (inclusive of its children; a module the model
calls outside its parent's ``forward``, as the head's losses, is timed on its own), the backward
pass and the gradient clipping with the optimizer's update. The model trains while it is timed:
run it on a quiet machine, and compare variants in interleaved runs.

    python tools/analysis_tools/train_step_profile.py configs/omnishapes/omnisegnet_tiny_2k_omnishapes_all.py
"""

import argparse
import statistics
import tempfile
import time
from collections import defaultdict


def profile_steps(cfg, iters: int = 30, warmup: int = 5, depth: int = 2) -> dict:
    """Medians (ms) of ``iters`` training steps after ``warmup``: keys ``data``, ``forward``,
    ``backward``, ``update``, ``step`` (their sum) and ``module:NAME`` for the modules down to
    ``depth`` levels that ran."""
    from mmengine.runner import Runner

    runner = Runner.from_cfg(cfg)
    runner._train_loop = runner.build_train_loop(runner._train_loop)
    runner.optim_wrapper = runner.build_optim_wrapper(runner.optim_wrapper)
    runner.call_hook('before_run')  # seeds the samplers and sets the message hub as training does
    model, wrapper = runner.model, runner.optim_wrapper
    model.train()
    times = defaultdict(list)
    started = {}

    def before(name):
        def hook(module, args):
            started[name] = time.perf_counter()

        return hook

    def after(name):
        def hook(module, args, output):
            times[f'module:{name}'][-1] += time.perf_counter() - started[name]

        return hook

    modules = {name: m for name, m in model.named_modules() if name and name.count('.') < depth}
    handles = []
    for name, module in modules.items():
        handles.append(module.register_forward_pre_hook(before(name)))
        handles.append(module.register_forward_hook(after(name)))
    loader = iter(runner.train_loop.dataloader)
    hub = runner.message_hub
    try:
        for i in range(warmup + iters):
            for key in ['data', 'forward', 'backward', 'update'] + [f'module:{n}' for n in modules]:
                times[key].append(0.0)
            hub.update_info('iter', i)
            t0 = time.perf_counter()
            data = next(loader)
            t1 = time.perf_counter()
            with wrapper.optim_context(model):
                data = model.data_preprocessor(data, True)
                losses = model._run_forward(data, mode='loss')
            loss, _ = model.parse_losses(losses)
            t2 = time.perf_counter()
            wrapper.backward(loss)
            t3 = time.perf_counter()
            wrapper.step()
            wrapper.zero_grad()
            t4 = time.perf_counter()
            for key, value in zip(('data', 'forward', 'backward', 'update'), (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                times[key][-1] = value
    finally:
        for handle in handles:
            handle.remove()
    steps = [sum(times[k][i] for k in ('data', 'forward', 'backward', 'update')) for i in range(warmup, warmup + iters)]
    out = {'step': statistics.median(steps) * 1e3}
    for key, values in times.items():
        kept = values[warmup:]
        if key.startswith('module:') and not any(kept):
            continue  # a module that did not run
        out[key] = statistics.median(kept) * 1e3
    return out


def main():
    from mmengine.config import Config, DictAction

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--iters', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--depth', type=int, default=2, help="module levels to time (1: the model's children)")
    parser.add_argument('--threads', type=int, help='torch threads (default: as set up)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='key=value, as in tools/train.py')
    args = parser.parse_args()

    import torch

    import omniris_mm  # noqa: F401

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir = tempfile.mkdtemp(prefix='train_step_profile_')
    cfg.log_level = 'WARNING'
    print(f'{args.config}: {args.warmup} + {args.iters} steps, {torch.get_num_threads()} threads')
    res = profile_steps(cfg, args.iters, args.warmup, args.depth)
    print(f'{"median ms":>10}  part')
    for key in ('step', 'data', 'forward'):
        print(f'{res[key]:10.1f}  {key}')
    for key, value in res.items():
        if key.startswith('module:'):
            name = key[len('module:') :]
            print(f'{value:10.1f}  {"  " * (name.count(".") + 1)}{name}')
    for key in ('backward', 'update'):
        print(f'{res[key]:10.1f}  {key}')


if __name__ == '__main__':
    main()
