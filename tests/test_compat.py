"""Each fix of omniris_mm.compat, shown to fail without it (OMNIRIS_MM_DISABLE_COMPAT=1)."""

import os
import os.path as osp
import shutil
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
    from conftest import run_distributed

    def launch(work_dir, disable):
        env = dict(os.environ, OMNIRIS_MM_DISABLE_COMPAT='1' if disable else '0', CUDA_VISIBLE_DEVICES='')
        return run_distributed(
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
            cleanup=lambda: shutil.rmtree(work_dir, ignore_errors=True),
            env=env,
            timeout=300,
        )

    without = launch(tmp_path / 'off', disable=True)
    # mmengine's launcher asks for a CUDA device, which a CPU-only torch does not have.
    assert without.returncode != 0 and 'torch.cuda.set_device(local_rank)' in without.stdout + without.stderr
    out = launch(tmp_path / 'on', disable=False)
    weights(out)
    assert 'Distributed launcher: pytorch' in out.stdout + out.stderr or 'world_size: 2' in out.stdout + out.stderr


def test_amp_training_on_a_cpu(omnishapes, tmp_path):
    """tools/train.py --amp trains the tiny config on a CPU, in bfloat16."""
    import torch
    from mmengine.optim import AmpOptimWrapper

    model = torch.nn.Linear(2, 2)
    wrapper = AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with wrapper.optim_context(model):
        assert model(torch.randn(1, 2)).dtype == torch.bfloat16
    assert not wrapper.loss_scaler.is_enabled()

    config = osp.join(osp.dirname(TOY), '..', 'configs', 'omnishapes', 'omnisegnet_tiny_omnishapes.py')
    opts = ['train_cfg.max_iters=2', 'train_cfg.val_interval=3', 'default_hooks.checkpoint.interval=2']
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
        opts += [f'{loader}.dataset.datasets.{i}.data_root={omnishapes}' for i in range(3)]

    def train(work_dir, disable):
        script = osp.join(osp.dirname(TOY), '..', 'tools', 'train.py')
        return run([sys.executable, script, config, '--amp', '--work-dir', str(work_dir), '--cfg-options', *opts],
                   disable=disable)  # fmt: skip

    without = train(tmp_path / 'off', disable=True)
    assert without.returncode != 0 and 'only available training on gpu' in without.stdout + without.stderr
    out = train(tmp_path / 'on', disable=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "type='GuardedAmpOptimWrapper'" in out.stdout + out.stderr and osp.isfile(tmp_path / 'on' / 'iter_2.pth')
