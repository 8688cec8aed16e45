"""Score the oracle (ground truth as prediction) on a config's test set.

The upper bound of every OmniRIS metric, and an end-to-end check of a data
set's files, pipeline and metric: every figure must be 100 (nan where a ratio has
no sample). Usage: python tools/analysis_tools/eval_oracle.py CONFIG [--cfg-options ...]
"""

import argparse
import json
import os

from mmengine.config import Config, DictAction
from mmengine.evaluator import Evaluator
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

from omniris_mm.datasets import SKIPPED_KEY


def oracle_predict(data_samples) -> None:
    """Copy the ground truth into the prediction fields that ``OmniRISMetric`` reads."""
    for sample in data_samples:
        sample.pred_sem_seg = sample.gt_sem_seg.clone()
        sample.pred_no_target = sample.gt_no_target


def evaluate_oracle(cfg: Config) -> dict:
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    loader = Runner.build_dataloader(cfg.test_dataloader)
    evaluator = Evaluator(cfg.test_evaluator)
    evaluator.dataset_meta = getattr(loader.dataset, 'metainfo', None)
    logger = MMLogger.get_current_instance()
    total, done = len(loader.dataset), 0
    logger.info(f'oracle predictions on {total} test samples')
    for i, batch in enumerate(loader):
        oracle_predict(batch['data_samples'])
        evaluator.process(batch['data_samples'], batch)
        done += len(batch['data_samples']) + len(batch.get(SKIPPED_KEY, ()))  # skipped: counted by the metric
        if (i + 1) % max(1, len(loader) // 10) == 0 or done == total:
            logger.info(f'[{done}/{total}]')
    return evaluator.evaluate(total)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, help='override config settings')
    parser.add_argument('--out', help='write the metrics to this JSON file')
    args = parser.parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    metrics = evaluate_oracle(cfg)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(metrics, f, indent=1)


if __name__ == '__main__':
    main()
