"""The command-line pieces that tools/train.py and tools/test.py share."""

import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--work-dir', help='the dir to save logs, models and metrics')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, help='override settings of the config, key=value'
    )
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(args: argparse.Namespace) -> Config:
    """The config with ``--cfg-options``, the launcher and the work dir (default ``work_dirs/CONFIG_NAME``)."""
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    # Configs under projects/ import their code as `projects.<name>` (custom_imports), as in MMDetection.
    repo_root = osp.dirname(osp.dirname(osp.abspath(__file__)))
    if repo_root not in sys.path:
        sys.path.insert(0, repo_root)
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def keep_seed_on_resume(cfg: Config) -> None:
    """Take the seed of the checkpoint to resume from, before the Runner is built.

    mmengine restores the seed only after it has built the dataloader, whose sampler
    has by then drawn its order from a fresh seed: the resumed run would see other
    samples than the interrupted one and end with other weights. Reading the seed
    first makes a resumed run finish exactly where an uninterrupted one does.
    """
    from mmengine.runner import find_latest_checkpoint

    from omniris_mm.engine import load_checkpoint_file

    path = cfg.get('load_from') or find_latest_checkpoint(cfg.work_dir)
    if not path or not osp.isfile(path):
        return
    meta = load_checkpoint_file(path, map_location='cpu', mmap=True).get('meta', {})
    if meta.get('seed') is not None:
        cfg.randomness = dict(cfg.get('randomness') or {}, seed=meta['seed'])
