"""Each fix of omniris_mm.compat, shown to fail without it (OMNIRIS_MM_DISABLE_COMPAT=1)."""

import os
import os.path as osp
import socket
import subprocess
import sys

TOY = osp.join(osp.dirname(osp.abspath(__file__)), 'toy_train.py')


def run(args, disable=False, timeout=300):
    env = dict(os.environ, OMNIRIS_MM_DISABLE_COMPAT='1' if disable else '0', CUDA_VISIBLE_DEVICES='')
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)


def weights(proc):
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith('WEIGHTS')][-1]
    return [float(v) for v in line.split()[1:]]


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_two_process_training_on_cpu(tmp_path):
    def launch(work_dir, disable):
        return run(
            [
                sys.executable,
                '-m',
                'torch.distributed.run',
                '--nproc_per_node',
                '2',
                '--master_port',
                str(free_port()),
                TOY,
                str(work_dir),
                '2',
                '0',
                'pytorch',
            ],
            disable=disable,
        )

    without = launch(tmp_path / 'off', disable=True)
    assert without.returncode != 0
    out = launch(tmp_path / 'on', disable=False)
    weights(out)
    assert 'Distributed launcher: pytorch' in out.stdout + out.stderr or 'world_size: 2' in out.stdout + out.stderr
