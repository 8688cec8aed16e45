"""A model-zoo file NAME-<sha256 prefix>.pth is checked whenever it is loaded (load_from, init_cfg, load_checkpoint)."""

import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import REPO
from mmengine.runner.checkpoint import load_checkpoint

from omniris_mm.engine import verify_hash_prefix


def test_published_name_is_verified_on_load(tmp_path):
    model = torch.nn.Linear(3, 2)
    torch.save({'state_dict': model.state_dict(), 'optimizer': {'x': 1}, 'meta': {'seed': 1}}, tmp_path / 'raw.pth')
    out = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'model_converters', 'publish_model.py'), str(tmp_path / 'raw.pth'),
         str(tmp_path / 'linear.pth')],  # fmt: skip
        capture_output=True, text=True, check=True, cwd=REPO, env={'PYTHONPATH': REPO, 'PATH': '/usr/bin:/bin'},
    )  # fmt: skip
    published = out.stdout.strip()
    assert osp.isfile(published) and verify_hash_prefix(published) == published[-12:-4]
    assert 'optimizer' not in torch.load(published, weights_only=True)

    fresh = torch.nn.Linear(3, 2)
    load_checkpoint(fresh, published)
    assert torch.equal(fresh.weight, model.weight)

    data = bytearray(open(published, 'rb').read())
    data[-20] ^= 0xFF  # one flipped byte, e.g. a damaged download
    open(published, 'wb').write(bytes(data))
    with pytest.raises(RuntimeError, match=r'linear-[0-9a-f]{8}\.pth: its name says SHA-256'):
        load_checkpoint(torch.nn.Linear(3, 2), published)


def test_names_without_a_hash_are_not_checked(tmp_path):
    path = tmp_path / 'iter_4.pth'
    torch.save({'state_dict': torch.nn.Linear(3, 2).state_dict()}, path)
    assert verify_hash_prefix(str(path)) is None
    load_checkpoint(torch.nn.Linear(3, 2), str(path))
