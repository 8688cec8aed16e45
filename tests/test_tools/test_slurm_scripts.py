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


@pytest.mark.parametrize(
    'script,args,expected',
    [
        (
            'slurm_train.sh',
            ['gpu', 'omni', 'configs/omnisegnet_swinb.py', 'work', '--amp'],
            ['train.py', 'configs/omnisegnet_swinb.py', '--work-dir=work', '--amp'],
        ),
        (
            'slurm_test.sh',
            ['gpu', 'omni', 'cfg.py', 'ckpt.pth', '--out', 'p.pkl'],
            ['test.py', 'cfg.py', 'ckpt.pth', '--out', 'p.pkl'],
        ),
    ],
)
def test_slurm_scripts_hand_srun_the_job(fake_srun, script, args, expected):
    env, log = fake_srun
    path = osp.join(REPO, 'tools', script)
    subprocess.run(['bash', path, *args], env=env, check=True)
    srun_args = log.read_text().strip().split('\n')
    assert srun_args[:2] == ['-p', 'gpu'] and '--job-name=omni' in srun_args
    assert '--ntasks=16' in srun_args and '--gres=gpu:8' in srun_args  # GPUS=16: two nodes of 8
    tail = srun_args[srun_args.index('-u') + 1 :]
    assert tail == [osp.join(REPO, 'tools', expected[0]), *expected[1:], '--launcher', 'slurm']
    proc = subprocess.run(['bash', path, 'gpu'], env=env, capture_output=True, text=True)
    assert proc.returncode == 2 and 'usage' in proc.stderr
