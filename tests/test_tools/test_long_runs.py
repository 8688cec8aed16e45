"""Long runs: resume ends where an uninterrupted run does; 2 processes over gloo follow the 1-process
loss curve; a NaN loss stops the run naming the iteration and samples, or is skipped and counted."""

import glob
import json
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys

import torch
from conftest import REPO, run_distributed
from test_train_test import CONFIG, data_options

from omniris_mm.engine import load_checkpoint_file

# Deterministic data (fixed pairing and prompt seeds, no flips) so that runs can be compared.
DETERMINISTIC = [f'train_dataloader.dataset.datasets.{i}.test_mode=True' for i in range(3)] + [
    f'train_dataloader.dataset.datasets.{i}.pipeline.4.prob=0.0' for i in range(3)
]


def train(work_dir, *options, flags=(), launcher=None, check=True):
    opts = ['--work-dir', str(work_dir), *flags, '--cfg-options', *options]
    if launcher:
        with socket.socket() as s:  # a free port for the rendezvous
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        cmd = ['bash', osp.join(REPO, 'tools', 'dist_train.sh'), CONFIG, str(launcher), *opts]
        env = dict(os.environ, PORT=str(port), OMP_NUM_THREADS='1')
    else:
        cmd = [sys.executable, osp.join(REPO, 'tools', 'train.py'), CONFIG, *opts]
        env = dict(os.environ)
    if launcher:
        proc = run_distributed(
            cmd, cleanup=lambda: shutil.rmtree(work_dir, ignore_errors=True), timeout=600, cwd=REPO, env=env
        )
    else:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    out = proc.stdout + proc.stderr
    if check:
        assert proc.returncode == 0, out[-4000:]
    return proc.returncode, out


def weights(path):
    return load_checkpoint_file(path, map_location='cpu')['state_dict']


def losses(work_dir):
    curve = {}
    for path in glob.glob(osp.join(str(work_dir), '*', 'vis_data', 'scalars.json')):
        for line in open(path):
            rec = json.loads(line)
            if 'loss' in rec:
                curve[rec['iter']] = rec['loss']
    return [curve[i] for i in sorted(curve)]


def common(root, iters, batch_size):
    return [
        f'train_cfg.max_iters={iters}',
        f'train_cfg.val_interval={iters + 1}',
        f'train_dataloader.batch_size={batch_size}',
        'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1',
        'log_processor.window_size=1',
        *data_options(root),
    ]


def test_resume_ends_with_the_same_weights(omnishapes, tmp_path):
    """A seeded run cut after its iteration-2 checkpoint and resumed with --resume (no seed given:
    tools/train.py takes the checkpoint's before the sampler is built) ends with exactly the
    weights of the uninterrupted run, random flips and prompt sampling included."""
    train(tmp_path / 'full', *common(omnishapes, 4, 2), 'randomness.seed=0')
    train(tmp_path / 'cut', *common(omnishapes, 2, 2), 'randomness.seed=0')  # stops after iter_2.pth
    assert not osp.exists(tmp_path / 'cut' / 'iter_4.pth')
    train(tmp_path / 'cut', *common(omnishapes, 4, 2), flags=['--resume'])
    full, resumed = weights(tmp_path / 'full' / 'iter_4.pth'), weights(tmp_path / 'cut' / 'iter_4.pth')
    assert full.keys() == resumed.keys()
    assert all(torch.equal(full[k], resumed[k]) for k in full), 'resumed run ended with other weights'
    cut = weights(tmp_path / 'cut' / 'iter_2.pth')
    assert any(not torch.equal(full[k], cut[k]) for k in full)  # iterations 3-4 did change the weights
    assert losses(tmp_path / 'full') == losses(tmp_path / 'cut')

    # A first launch with --resume (nothing to resume in its work dir) keeps the config's load_from:
    # mmengine alone would start from the initial weights.
    ckpt = str(tmp_path / 'full' / 'iter_4.pth')
    _, out = train(tmp_path / 'next_stage', *common(omnishapes, 1, 2), f'load_from={ckpt}', flags=['--resume'])
    warning = f'--resume: no checkpoint in {tmp_path / "next_stage"} to resume from; '
    assert warning + f"starting from the config's load_from ({ckpt})" in out
    assert f'Load checkpoint from {ckpt}' in out and 'Resumed' not in out


def test_two_processes_follow_the_one_process_loss_curve(omnishapes, tmp_path):
    """tools/dist_train.sh CONFIG 2 (gloo, CPU) with 1 image per process vs 1 process with 2: the same
    samples per iteration, so the logged losses (averaged over the ranks) agree to 1e-4 relative at
    every one of 8 iterations. Before the loss normalisers were averaged over the ranks, a batch whose
    instances all sat on one rank logged (and trained) half the instance loss: 26 % off."""
    train(tmp_path / 'one', *common(omnishapes, 8, 2), 'randomness.seed=0', *DETERMINISTIC)
    train(tmp_path / 'two', *common(omnishapes, 8, 1), 'randomness.seed=0', *DETERMINISTIC, launcher=2)
    one, two = losses(tmp_path / 'one'), losses(tmp_path / 'two')
    assert len(one) == len(two) == 8
    for i, (a, b) in enumerate(zip(one, two), 1):
        assert abs(a - b) <= 1e-4 * abs(a), f'iteration {i}: 1 process {a}, 2 processes {b}'


def test_nan_loss_stops_the_run_naming_iteration_and_samples(omnishapes, tmp_path):
    nan = 'model.head.referring_criterion.loss_weight=nan'
    code, out = train(tmp_path / 'stop', *common(omnishapes, 3, 2), nan, check=False)
    assert code != 0
    assert 'FloatingPointError: non-finite loss (nan) at iteration 1; batch on this rank: ' in out
    assert 'OmniRef.json [' in out and 'record' in out  # the samples, by file, split and record
    assert not glob.glob(str(tmp_path / 'stop' / 'iter_*.pth'))

    code, out = train(tmp_path / 'skip', *common(omnishapes, 3, 2), nan, 'optim_wrapper.on_nonfinite=skip', check=False)
    assert code == 0, out[-3000:]
    assert out.count('step skipped') == 3 and 'step skipped (3 so far)' in out
    start = weights(tmp_path / 'skip' / 'iter_2.pth')
    end = weights(tmp_path / 'skip' / 'iter_3.pth')
    assert all(torch.equal(start[k], end[k]) for k in start)  # no step was taken
    assert all(torch.isfinite(v).all() for v in end.values() if v.is_floating_point())
