"""Train an OmniRIS model with mmengine's Runner (the flags of MMDetection's tools/train.py)."""

import argparse
import logging

from mmengine.logging import print_log
from mmengine.registry import RUNNERS
from mmengine.runner import Runner, find_latest_checkpoint
from runner_args import add_common_args, keep_seed_on_resume, load_config


def parse_args():
    parser = argparse.ArgumentParser(description='Train an OmniRIS model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--amp', action='store_true', help='enable automatic-mixed-precision training')
    parser.add_argument('--auto-scale-lr', action='store_true', help='scale the learning rate with the batch size')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from this checkpoint, or from the latest one in the work dir if none is given',
    )
    add_common_args(parser)
    return parser.parse_args()


def main():
    args = parse_args()
    cfg = load_config(args)
    if args.amp:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper in ('AmpOptimWrapper', 'GuardedAmpOptimWrapper'):
            print_log('AMP training is already enabled in your config.', logger='current', level=logging.WARNING)
        else:
            # The guarded wrapper keeps its NaN/inf guard under AMP.
            cfg.optim_wrapper.type = 'GuardedAmpOptimWrapper' if wrapper == 'GuardedOptimWrapper' else 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise RuntimeError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        if find_latest_checkpoint(cfg.work_dir):
            cfg.resume, cfg.load_from = True, None
        else:
            # mmengine would start from the initial weights (ImageNet, BERT), dropping load_from: a first
            # launch of stage 2 or 3 with --resume would silently train the wrong model.
            start = f"the config's load_from ({cfg.load_from})" if cfg.get('load_from') else 'the initial weights'
            print_log(
                f'--resume: no checkpoint in {cfg.work_dir} to resume from; starting from {start}',
                logger='current',
                level=logging.WARNING,
            )
            cfg.resume = False
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    if cfg.get('resume'):
        keep_seed_on_resume(cfg)
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    runner.train()


if __name__ == '__main__':
    main()
