"""tools/slurm_train.sh and slurm_test.sh hand srun the right job (a stand-in srun records it)."""

import os
import os.path as osp
import subprocess

import pytest
from conftest import REPO


@pytest.fixture
def fake_srun(tmp_path):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    srun = bin_dir / 'srun'
    srun.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$SRUN_LOG"\n')
    srun.chmod(0o755)
    log = tmp_path / 'srun.log'
    env = dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}', SRUN_LOG=str(log), GPUS='16')
    return env, log


def test_slurm_train(fake_srun):
    env, log = fake_srun
    script = osp.join(REPO, 'tools', 'slurm_train.sh')
    subprocess.run(['bash', script, 'gpu', 'omni', 'configs/omnisegnet_swinb.py', 'work', '--amp'], env=env, check=True)
    args = log.read_text().split('\n')
    assert args[:2] == ['-p', 'gpu'] and '--ntasks=16' in args and '--gres=gpu:8' in args
    tail = args[args.index('-u') + 1 :]
    assert tail[:5] == [
        osp.join(REPO, 'tools', 'train.py'),
        'configs/omnisegnet_swinb.py',
        '--work-dir=work',
        '--launcher',
        'slurm',
    ]
    assert tail[5] == '--amp'


def test_slurm_test_and_usage(fake_srun):
    env, log = fake_srun
    script = osp.join(REPO, 'tools', 'slurm_test.sh')
    subprocess.run(['bash', script, 'gpu', 'omni', 'cfg.py', 'ckpt.pth', '--out', 'p.pkl'], env=env, check=True)
    args = log.read_text().split('\n')
    tail = args[args.index('-u') + 1 :]
    assert tail[:7] == [
        osp.join(REPO, 'tools', 'test.py'),
        'cfg.py',
        'ckpt.pth',
        '--launcher',
        'slurm',
        '--out',
        'p.pkl',
    ]
    proc = subprocess.run(['bash', script, 'gpu'], env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and 'usage' in proc.stderr
