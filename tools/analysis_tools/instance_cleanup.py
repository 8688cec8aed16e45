"""Score the test-time instance clean-up settings of a checkpoint in one pass of the model.

The model runs once over the test set with the clean-up off and a low score threshold
(``--pre-thr``); each setting (``test_cfg`` keys ``instance_thr``, ``instance_in_union``,
``instance_min_inside``, ``instance_nms``) is then applied to the kept candidates with the
head's own ``clean_instances`` and scored as ``OmniRISMetric(instances=True)`` scores
(count accuracy, mask AP / AP50, share of instance pixels outside the union):

    python tools/analysis_tools/instance_cleanup.py configs/omnishapes/omnisegnet_tiny_2k_omnishapes_all.py \\
        work_dirs/quickstart/iter_2000.pth

A candidate below ``--pre-thr`` never reaches any setting, so settings whose
``instance_thr`` is below it are refused.
"""

import argparse
import copy
import json

import torch
from mmengine.config import Config, DictAction
from mmengine.runner import Runner

from omniris_mm.evaluation.metrics.omniris_metric import (
    INSTANCE_KEYS,
    _field,
    _instance_masks,
    _mask,
    instance_counts,
    summarize_instances,
)
from omniris_mm.models.heads.adaptive_mask_head import TEST_CFG_DEFAULTS, AdaptiveMaskHead

OFF = dict(instance_in_union=False, instance_nms=None)
GAUSS = dict(kernel='gaussian', sigma=2.0)
SETTINGS = {
    'none': dict(OFF),
    'default': {},
    'union-cut only': dict(instance_nms=None),
    'matrix-NMS only': dict(instance_in_union=False),
    'NMS linear': dict(instance_nms=dict(kernel='linear')),
    'NMS sigma 1': dict(instance_nms=dict(GAUSS, sigma=1.0)),
    'NMS sigma 4': dict(instance_nms=dict(GAUSS, sigma=4.0)),
    'default, thr 0.4': dict(instance_thr=0.4),
    'default, thr 0.3': dict(instance_thr=0.3),
    'default, min inside 0.3': dict(instance_min_inside=0.3),
    'default, min inside 0.7': dict(instance_min_inside=0.7),
    'rescore inside': dict(rescore_inside=True, instance_min_inside=0.0),
    'rescore inside, thr 0.3': dict(rescore_inside=True, instance_min_inside=0.0, instance_thr=0.3),
    'rescore inside, no NMS': dict(rescore_inside=True, instance_min_inside=0.0, instance_nms=None),
}


def collect(cfg: Config, pre_thr: float) -> list:
    """(candidate masks, scores, union answer, referred masks, crowd masks) per test sample."""
    cfg = copy.deepcopy(cfg)
    cfg.model.head.setdefault('test_cfg', {}).update(OFF, instance_thr=pre_thr)
    runner = Runner.from_cfg(cfg)
    runner.load_or_resume()
    model, loader = runner.model.eval(), runner.test_dataloader
    samples = []
    with torch.no_grad():
        for i, batch in enumerate(loader):
            for s in model.test_step(batch):
                gt = _instance_masks(s, 'gt_instances')
                crowd = _instance_masks(s, 'ignored_instances')
                samples.append(
                    (
                        _instance_masks(s, 'pred_instances'),
                        torch.as_tensor(_field(s.pred_instances, 'scores')).cpu(),
                        _mask(s, 'pred_sem_seg').bool(),
                        gt,
                        crowd if crowd is not None else gt[:0],
                    )
                )
            if i % 20 == 0:
                print(f'[instance_cleanup] batch {i + 1}/{len(loader)}', flush=True)
    return samples


def score(samples: list, setting: dict) -> dict:
    cfg = dict(TEST_CFG_DEFAULTS, **setting)
    rescore = cfg.pop('rescore_inside', False)
    records = []
    for masks, scores, union, gt, crowd in samples:
        if rescore:
            area = masks.flatten(1).sum(1).clamp(min=1)
            scores = scores * (masks & union).flatten(1).sum(1) / area
        keep = scores > cfg['instance_thr']
        m, s = AdaptiveMaskHead.clean_instances(masks[keep], scores[keep], union, cfg)
        records.append(instance_counts(m, s, gt, crowd, union.to(torch.uint8)))
    return summarize_instances(records)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('--pre-thr', type=float, default=0.2, help='candidates kept from the one model pass')
    parser.add_argument('--settings', nargs='+', default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument('--work-dir', default='work_dirs/instance_cleanup')
    parser.add_argument('--out', help='write the figures as JSON here')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.work_dir, cfg.load_from = args.work_dir, args.checkpoint
    for name in args.settings:
        thr = dict(TEST_CFG_DEFAULTS, **SETTINGS[name])['instance_thr']
        if thr < args.pre_thr:
            parser.error(f'setting {name!r} keeps instances above {thr}, below --pre-thr {args.pre_thr}')
    samples = collect(cfg, args.pre_thr)
    figures = {name: score(samples, SETTINGS[name]) for name in args.settings}
    print(f'{"setting":<28}' + ''.join(f'{k:>11}' for k in INSTANCE_KEYS))
    for name, f in figures.items():
        print(f'{name:<28}' + ''.join(f'{f[k]:>11.1f}' for k in INSTANCE_KEYS))
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(figures, f, indent=1)


if __name__ == '__main__':
    main()
