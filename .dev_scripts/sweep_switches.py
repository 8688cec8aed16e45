"""Train the tiny OmniSegNet with one release behaviour switched at a time, over several seeds.

This is how the defaults of our configs were chosen (issue 10, point 5): each behaviour in which
the published OmniSegNet differs from ours (:data:`omniris_mm.models.RELEASE_BEHAVIOURS`) is set
to the release's value alone, everything else as in our configs, and measured by two protocols:

* ``quickstart``: ``tools/train.py`` + ``tools/test.py`` of the quickstart's config
  (``configs/omnishapes/omnisegnet_tiny_2k_omnishapes.py``, 2,000 iterations, about 11 minutes on 2
  cores) with ``randomness.seed=SEED``; text / visual / omni / all gIoU, cIoU and N-acc on the
  OmniShapes test splits;
* ``overfit``: the suite's real-photo overfit (``tests/test_models/test_overfit.py``: 5 samples of
  ``../shared/data/omniref_real_mini`` at 384 x 384, 200 AdamW steps, about 2.5 minutes), the model
  initialised with ``torch.manual_seed(SEED)``; gIoU and cIoU on those samples;
* ``single``: as ``quickstart``, with the quickstart's schedule less its omni samples
  (``configs/omnishapes/omnisegnet_tiny_2k_omnishapes_single.py``, text : visual = 1 : 1), tested on
  all three splits: the schedule on which the published fusion (``union``, 9) can be compared with ours.

Every finished run is appended to ``WORK_DIR/results.jsonl`` and skipped when the sweep is run
again, so a sweep can be spread over several sessions. The table printed at the end gives the
mean over seeds and each seed's figure.

    python .dev_scripts/sweep_switches.py --variants ours stage_out nearest \\
        --seeds 0 1 2 --protocols overfit quickstart --jobs 2 --threads 1

Runs in parallel (``--jobs``) only change timings, not figures; ``--threads`` does change them
(floating-point reduction order): keep it fixed within one comparison.
"""

import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
QUICKSTART = 'configs/omnishapes/omnisegnet_tiny_2k_omnishapes.py'
# The training config of each protocol that trains with tools/train.py.
CONFIGS = {
    'quickstart': QUICKSTART,
    'single': 'configs/omnishapes/omnisegnet_tiny_2k_omnishapes_single.py',
    'target': 'configs/omnishapes/omnisegnet_tiny_2k_omnishapes_target.py',
    'negative': 'configs/omnishapes/omnisegnet_tiny_2k_omnishapes_negative.py',
    'all': 'configs/omnishapes/omnisegnet_tiny_2k_omnishapes_all.py',
}
# Further test configs a protocol's checkpoint is scored with: (prefix, config, {their key: our key}).
EXTRA_TESTS = {
    'all': [
        (
            'click',
            'configs/omnishapes/interactive_omnishapes.py',
            {'mIoU@1': 'mIoU@1', 'NoC@85': 'NoC@85', 'NoC@90': 'NoC@90'},
        ),
        ('box', 'configs/omnishapes/target_box_omnishapes.py', {'gIoU': 'mIoU'}),
        ('5shot', 'configs/omnishapes/kshot_omnishapes.py', {'gIoU': 'gIoU'}),
        ('negative', 'configs/omnishapes/negative_omnishapes.py', {'gIoU': 'gIoU', 'excluded': 'excluded'}),
    ]
}
DATA = 'data/omnishapes'

# One release behaviour each (the number is the list), as mmengine config options on the model.
VARIANTS = {
    'ours': {},
    'stage_out': {'model.backbone.stage_out': 'fusion'},  # 1
    'minimap_logits': {'model.head.minimap_merge': 'logits'},  # 2
    'nearest': {'model.prompt_encoder.prompt_region': 'nearest'},  # 3
    'relu_eps': {'model.prompt_encoder.downscale_relu': True, 'model.prompt_encoder.norm_eps': 1e-6},  # 4
    # 5: ours now has the release's value (no grid prior); this variant measures the prior we had.
    'grid_prior': {'model.head.grid_prior': True},  # 5
    'gated': {'model.head.prompt_attn': 'gated'},  # 6
    'no_type_embed': {'model.prompt_type_embed': False},  # 7
    'pad_tokens': {'model.text_encoder.pad_to_max_tokens': True, 'model.head.mask_prompt_padding': False},  # 8
    'union': {'model.fusion': 'union'},  # 9
    'release_init': {  # 10
        'model.backbone.gate_zero_init': 'both',
        'model.head.zero_init_prompt_proj': True,
        'model.head.zero_init_prompt_attn': False,
    },
}
# Not a release behaviour: the instance branch's "no object" weight (Mask2Former's 0.1) raised to 0.5
# (issue 13 point 0: fewer duplicate instances above the score threshold). The 'all' protocol's
# config (the quickstart's) has it since; runs of that protocol before it were 'ours' without it.
VARIANTS['inst_noobj'] = {
    f'model.head.instance_criterion.loss_cls.{k}': v
    for k, v in dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0, class_weight=[1.0, 0.5]).items()
}
# The prompts on the target as maps added to the target's features (now the default; runs of the
# target protocol before it were 'ours' without them).
VARIANTS['target_maps'] = {'model.target_maps': True}
# The instance losses on a quarter of Mask2Former's 12,544 points per mask (the tiny model's logit maps
# are 32 x 32 on the quickstart's 128 x 128 images): about 0.03-0.04 s less per quickstart step.
VARIANTS['inst_points'] = {'model.head.instance_criterion.num_points': 3136}
# AdamW's fused CPU kernel (one pass over each tensor for the whole update) instead of the multi-tensor
# path: the same update to float rounding (not bit for bit), about 9 ms less of a 0.28 s quickstart step.
VARIANTS['adamw_fused'] = {'optim_wrapper.optimizer.foreach': None, 'optim_wrapper.optimizer.fused': True}
# Training-data variants (quickstart and target protocols only): not model options.
DATA_VARIANTS = {
    # k-shot exemplars: every visual training sample with 1 to 3 references of its shape kind
    'kshot': {'train_dataloader.dataset.datasets.1.num_shots': (1, 3)},
    # protocol 'all': two prompts on the target per batch instead of one (batches of 11)
    'target2': {
        'train_dataloader.batch_size': 11,
        'train_dataloader.sampler.batch_size': 11,
        'train_dataloader.sampler.source_ratio': [2, 2, 1, 1.25, 0.625],
    },
}
# Schedule variants (training-only, like the data variants): the quickstart's poly schedule ended
# after fewer iterations, the checkpoint written at the new end.
# Batch variants (protocol 'all'): the same number of samples in larger batches over fewer
# iterations (the sampler keeps the sources' shares exact across batches), the learning rate
# scaled by the square root ('b15') or linearly ('b15_lr15') with the batch: a step of 15 samples
# costs about 1.26 steps of 10 on the 2-core CPU (its per-step overhead does not grow with the batch).
SCHEDULES = {'iters1600': 1600, 'iters1800': 1800, 'b15': 1333, 'b15_lr15': 1333}
BATCHES = {'b15': (15, 1.22e-3), 'b15_lr15': (15, 1.5e-3)}
for _name, _iters in SCHEDULES.items():
    DATA_VARIANTS[_name] = {
        'train_cfg.max_iters': _iters,
        'train_cfg.val_interval': _iters + 1,
        'train_cfg.val_begin': _iters + 1,
        'param_scheduler.0.end': _iters,
        'default_hooks.checkpoint.interval': _iters,
    }
    if _name in BATCHES:
        _batch, _lr = BATCHES[_name]
        DATA_VARIANTS[_name].update(
            {
                'train_dataloader.batch_size': _batch,
                'train_dataloader.sampler.batch_size': _batch,
                'optim_wrapper.optimizer.lr': _lr,
            }
        )
VARIANTS.update(DATA_VARIANTS)
FIGURES = {
    'quickstart': ('text/gIoU', 'visual/gIoU', 'omni/gIoU', 'gIoU', 'cIoU', 'N-acc'),
    'single': ('text/gIoU', 'visual/gIoU', 'omni/gIoU', 'gIoU', 'cIoU', 'N-acc'),
    'target': ('text/gIoU', 'visual/gIoU', 'omni/gIoU', 'gIoU', 'cIoU', 'N-acc'),
    'negative': ('text/gIoU', 'visual/gIoU', 'omni/gIoU', 'gIoU', 'cIoU', 'N-acc'),
    'all': ('text/gIoU', 'visual/gIoU', 'omni/gIoU', 'gIoU', 'N-acc')
    + tuple(f'{prefix}/{ours}' for prefix, _, keys in EXTRA_TESTS['all'] for ours in keys.values()),
    'overfit': ('gIoU', 'cIoU'),
}


def options(variant):
    return [f'{k}={v}' for k, v in VARIANTS[variant].items()]


def _test(config, ckpt, work, opts, log):
    """tools/test.py of ``config`` on ``ckpt`` into ``work``; returns its metrics."""
    cmd = [
        sys.executable,
        'tools/test.py',
        config,
        ckpt,
        '--work-dir',
        work,
        *(['--cfg-options', *opts] if opts else []),
    ]
    _call(cmd, log)
    runs = sorted(d for d in os.listdir(work) if osp.isdir(osp.join(work, d)))
    with open(osp.join(work, runs[-1], f'{runs[-1]}.json')) as f:
        return json.load(f)


def _call(cmd, log):
    with open(log, 'w') as f:
        if subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT).returncode:
            raise RuntimeError(f'{" ".join(cmd)} failed; see {log}')


def run_quickstart(variant, seed, work, config=QUICKSTART, extra_tests=()):
    """tools/train.py then tools/test.py of ``config`` (and of each of ``extra_tests`` on the same
    checkpoint, their figures prefixed); returns the test metrics."""
    opts = options(variant)
    ckpt = osp.join(work, f'iter_{SCHEDULES.get(variant, 2000)}.pth')
    if not osp.isfile(ckpt):  # a finished training is not run again
        cmd = [sys.executable, 'tools/train.py', config, '--work-dir', work, '--cfg-options', f'randomness.seed={seed}']
        _call(cmd + opts, osp.join(work, 'train.log'))
    metrics = _test(config, ckpt, osp.join(work, 'test'), opts, osp.join(work, 'test.log'))
    model_opts = [o for o in opts if o.startswith('model.')]  # the data variants are training-only
    for prefix, test_config, keys in extra_tests:
        out = _test(
            test_config, ckpt, osp.join(work, f'test_{prefix}'), model_opts, osp.join(work, f'test_{prefix}.log')
        )
        metrics.update({f'{prefix}/{ours}': out[theirs] for theirs, ours in keys.items()})
    return metrics


def run_overfit(variant, seed):
    """The suite's real-photo overfit with the model built from ``variant`` and ``seed``."""
    sys.path[:0] = [osp.join(REPO, 'tests'), osp.join(REPO, 'tests', 'test_models')]
    from model_utils import build_model
    from test_overfit import overfit, real_mini

    model = build_model(seed=seed, options=VARIANTS[variant])
    curve, metrics, seconds = overfit(*real_mini(), iters=200, model=model)
    return dict(metrics, loss_first=curve[0], loss_last=curve[-1], seconds=seconds)


def one(args):
    """A single run in this process (the sweep starts one subprocess per run)."""
    import torch

    torch.set_num_threads(args.threads)
    work = osp.join(args.work_dir, f'{args.one[0]}-{args.one[1]}-s{args.one[2]}')
    os.makedirs(work, exist_ok=True)
    protocol, variant, seed = args.one[0], args.one[1], int(args.one[2])
    if protocol not in CONFIGS and variant in DATA_VARIANTS:
        raise ValueError(f'{variant!r} changes the training data: only the {list(CONFIGS)} protocols train with it')
    start = time.time()
    if protocol in CONFIGS:
        metrics = run_quickstart(variant, seed, work, CONFIGS[protocol], EXTRA_TESTS.get(protocol, ()))
    else:
        metrics = run_overfit(variant, seed)
    record = dict(protocol=protocol, variant=variant, seed=seed, threads=args.threads, seconds=time.time() - start)
    record.update({k: metrics[k] for k in FIGURES[protocol]})
    print(json.dumps(record))


def load(path):
    if not osp.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def table(records, protocols, variants, seeds):
    lines = []
    for protocol in protocols:
        names = FIGURES[protocol]
        lines.append(f'\n{protocol} (mean over seeds; per seed in brackets)')
        lines.append(f'{"variant":<16}' + ''.join(f'{n:>24}' for n in names))
        for variant in variants:
            rows = {r['seed']: r for r in records if r['protocol'] == protocol and r['variant'] == variant}
            done = [s for s in seeds if s in rows]
            if not done:
                continue
            cells = []
            for n in names:
                vals = [rows[s][n] for s in done]
                cells.append(f'{sum(vals) / len(vals):6.1f} [' + ' '.join(f'{v:.1f}' for v in vals) + ']')
            lines.append(f'{variant:<16}' + ''.join(f'{c:>24}' for c in cells) + f'  seeds {done}')
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--variants', nargs='+', default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    parser.add_argument('--protocols', nargs='+', default=['overfit', 'quickstart'], choices=list(FIGURES))
    parser.add_argument('--work-dir', default='work_dirs/sweep_switches')
    parser.add_argument('--jobs', type=int, default=1, help='runs at a time')
    parser.add_argument('--threads', type=int, default=1, help='torch threads per run')
    parser.add_argument('--one', nargs=3, metavar=('PROTOCOL', 'VARIANT', 'SEED'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.work_dir = osp.abspath(args.work_dir)
    if args.one:
        return one(args)
    os.makedirs(args.work_dir, exist_ok=True)
    results = osp.join(args.work_dir, 'results.jsonl')
    if set(CONFIGS) & set(args.protocols) and not osp.exists(osp.join(REPO, DATA, 'OmniRef.json')):
        subprocess.run([sys.executable, 'tools/dataset_converters/make_omnishapes.py', DATA], cwd=REPO, check=True)
    have = {(r['protocol'], r['variant'], r['seed']) for r in load(results) if r.get('threads') == args.threads}
    todo = [(p, v, s) for p in args.protocols for s in args.seeds for v in args.variants if (p, v, s) not in have]
    print(f'[sweep] {len(todo)} runs to do, {len(have)} recorded in {results}', flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))

    def launch(job):
        cmd = [sys.executable, osp.abspath(__file__), '--one', job[0], job[1], str(job[2])]
        cmd += ['--work-dir', args.work_dir, '--threads', str(args.threads)]
        out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        if out.returncode:
            print(f'[sweep] {job} failed:\n{out.stdout[-2000:]}{out.stderr[-4000:]}', flush=True)
            return
        record = json.loads(out.stdout.strip().splitlines()[-1])
        with open(results, 'a') as f:
            f.write(json.dumps(record) + '\n')
        figures = ', '.join(f'{k} {record[k]:.1f}' for k in FIGURES[job[0]])
        print(f'[sweep] {job[0]} {job[1]} seed {job[2]}: {figures} ({record["seconds"]:.0f} s)', flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(launch, todo))
    records = [r for r in load(results) if r.get('threads') == args.threads]
    print(table(records, args.protocols, args.variants, args.seeds))


if __name__ == '__main__':
    main()
