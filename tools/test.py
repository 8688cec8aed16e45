"""Test an OmniRIS model with mmengine's Runner (the flags of MMDetection's tools/test.py).

Several configs before the checkpoint are tested one after another in one process, which pays
the imports (about 6 s on a 2-core CPU) once; with ``--work-dir`` each gets a folder named after
its config file:

    python tools/test.py configs/omnishapes/interactive_omnishapes.py \
        configs/omnishapes/kshot_omnishapes.py CHECKPOINT --work-dir work_dirs/kinds
"""

import argparse
import copy
import os.path as osp

from mmengine.evaluator import DumpResults
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from runner_args import add_common_args, load_config


def parse_args():
    parser = argparse.ArgumentParser(description='Test (and evaluate) an OmniRIS model')
    parser.add_argument('config', nargs='+', help='test config file path(s), tested in turn')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='dump the predictions to this pickle file')
    parser.add_argument('--show', action='store_true', help='show prediction results')
    parser.add_argument('--show-dir', help='save pictures of the predictions in this folder (under the work dir)')
    parser.add_argument('--wait-time', type=float, default=2, help='the interval of --show (s)')
    add_common_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    stems = [osp.splitext(osp.basename(c))[0] for c in args.config]
    if len(args.config) > 1:
        if args.out is not None:
            raise ValueError('--out takes one config: the predictions of several would overwrite each other')
        if len(set(stems)) < len(stems):
            raise ValueError(f'configs with the same file name would share a work dir: {args.config}')
    for config, stem in zip(args.config, stems):
        one = copy.copy(args)
        one.config = config
        if args.work_dir is not None and len(args.config) > 1:
            one.work_dir = osp.join(args.work_dir, stem)
        test(one)


def test(args):
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        hook = cfg.default_hooks.get('visualization')
        if hook is None:
            raise RuntimeError('--show/--show-dir need default_hooks.visualization in the config')
        hook.draw = True
        hook.show = args.show
        hook.wait_time = args.wait_time
        if args.show_dir:
            hook.test_out_dir = args.show_dir
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError('--out must be a .pkl file')
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    runner.test()
    # Loader workers stopped now, not when the garbage collector finds the runner: a shutdown from a
    # collection (mmengine's datasets collect while the next config's are built) waits 5 s per worker.
    workers = getattr(runner.test_loop.dataloader, '_iterator', None)
    if hasattr(workers, '_shutdown_workers'):
        workers._shutdown_workers()


if __name__ == '__main__':
    main()
