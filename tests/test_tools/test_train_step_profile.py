"""tools/analysis_tools/train_step_profile.py: a config's training step split into loading, each
module's forward, backward and the update, from the command line with --cfg-options."""

import re
import subprocess
import sys

from conftest import REPO


def test_profile_of_a_config_step(omnishapes):
    roots = [f'train_dataloader.dataset.datasets.{i}.data_root={omnishapes}/' for i in range(3)]
    cmd = [
        sys.executable,
        'tools/analysis_tools/train_step_profile.py',
        'configs/omnishapes/omnisegnet_tiny_omnishapes.py',
        '--iters',
        '1',
        '--warmup',
        '1',
        '--depth',
        '1',
        '--threads',
        '1',
        '--cfg-options',
        *roots,
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert '1 + 1 steps, 1 threads' in proc.stdout
    rows = dict((name, float(ms)) for ms, name in re.findall(r'^ +([0-9.]+) +(\S+)$', proc.stdout, re.M))
    # one timed step: the step is the sum of its parts (each printed to 0.1 ms)
    parts = sum(rows[k] for k in ('data', 'forward', 'backward', 'update'))
    assert abs(rows['step'] - parts) <= 0.25, rows
    # depth 1: the model's children that ran, each within the forward pass; nothing deeper
    assert {'backbone', 'text_encoder', 'prompt_encoder', 'head', 'data_preprocessor'} <= set(rows)
    assert not any('.' in name for name in rows)
    inside = ('backbone', 'text_encoder', 'prompt_encoder', 'head', 'data_preprocessor')
    assert all(0 < rows[k] <= rows['forward'] for k in inside)
    assert sum(rows[k] for k in inside) <= rows['forward'] + 0.25
