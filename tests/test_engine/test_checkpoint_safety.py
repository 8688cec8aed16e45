"""Checkpoints never run code: every path that reads one refuses a pickle naming a global outside
the allow-list, names the file and the global, and leaves the code unrun; --resume stays exact."""

import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from conftest import REPO, load_tool
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint

from omniris_mm.engine import TRUST_ENV, UntrustedCheckpointError, load_checkpoint_file, unsafe_globals

TOY = osp.join(REPO, 'tests', 'toy_train.py')
TINY = osp.join(REPO, 'configs', 'omnishapes', 'omnisegnet_tiny_omnishapes.py')


class _Payload:
    """Unpickled with weights_only=False, this writes ``marker``: what a hostile file would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f'open({self.marker!r}, "w").write("ran")',))


@pytest.fixture
def crafted(tmp_path, monkeypatch):
    monkeypatch.delenv(TRUST_ENV, raising=False)
    marker = tmp_path / 'marker'
    path = tmp_path / 'downloaded.pth'
    torch.save({'state_dict': torch.nn.Linear(3, 2).state_dict(), 'meta': {'x': _Payload(str(marker))}}, path)
    assert not marker.exists()
    return str(path), marker


def refused(call, path, marker):
    with pytest.raises(UntrustedCheckpointError) as err:
        call()
    message = str(err.value)
    assert path in message and 'builtins.exec' in message and f'{TRUST_ENV}=1' in message
    assert not marker.exists()


def test_every_loader_refuses_a_pickle_that_runs_code(crafted, tmp_path, monkeypatch):
    path, marker = crafted
    # load_from, init_cfg, --resume and tools/test.py all read through mmengine's CheckpointLoader.
    refused(lambda: load_checkpoint(torch.nn.Linear(3, 2), path), path, marker)
    refused(lambda: load_checkpoint_file(path), path, marker)

    # A URL (open-mmlab://, torchvision:// and modelzoo:// download through it): the download is
    # served from the crafted file.
    def download(url, dst, progress=True):
        assert url == 'https://example.org/zoo/evil.pth'
        with open(path, 'rb') as src, open(dst, 'wb') as out:
            out.write(src.read())

    monkeypatch.setattr('torch.hub.download_url_to_file', download)
    monkeypatch.setattr('torch.hub.get_dir', lambda: str(tmp_path / 'hub'))
    cached = str(tmp_path / 'hub' / 'checkpoints' / 'evil.pth')
    refused(lambda: CheckpointLoader.load_checkpoint('https://example.org/zoo/evil.pth'), cached, marker)

    publish = load_tool('model_converters', 'publish_model.py')
    refused(lambda: publish.publish(path, str(tmp_path / 'zoo.pth')), path, marker)
    converter = load_tool('model_converters', 'omnisegnet_official_to_mmdet.py')
    refused(lambda: converter.load_official(path), path, marker)
    runner_args = load_tool('runner_args.py')
    from mmengine.config import Config

    refused(lambda: runner_args.keep_seed_on_resume(Config(dict(load_from=path, work_dir=str(tmp_path)))), path, marker)

    from omniris_mm.apis import OmniRISInferencer

    refused(lambda: OmniRISInferencer(TINY, weights=path, device='cpu'), path, marker)


def test_tools_test_refuses_it(crafted, omnishapes):
    path, marker = crafted
    env = dict(os.environ)
    env.pop(TRUST_ENV, None)
    data = [f'test_dataloader.dataset.datasets.{i}.data_root={omnishapes}' for i in range(3)]
    data += ['test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']
    out = subprocess.run(
        [sys.executable, 'tools/test.py', TINY, path, '--cfg-options', *data],
        cwd=REPO, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert out.returncode != 0
    assert f'UntrustedCheckpointError: checkpoint {path}: not loaded, it names builtins.exec' in out.stderr
    assert not marker.exists()


class _ReachThroughGetattr:
    """A pickle that asks for a method of an allowed object (ndarray.tofile writes a file)."""

    def __reduce__(self):
        import numpy as np

        return (getattr, (np.zeros(2), 'tofile'))


def test_getattr_is_allowed_only_for_history_buffer_statistics(tmp_path):
    path = str(tmp_path / 'reach.pth')
    torch.save({'x': _ReachThroughGetattr()}, path)
    with pytest.raises(UntrustedCheckpointError, match=r"getattr\(array\(\[0\., 0\.\]\), 'tofile'\) is not allowed"):
        load_checkpoint_file(path)


def test_a_trusted_file_loads_with_the_switch(crafted, monkeypatch):
    path, marker = crafted
    monkeypatch.setenv(TRUST_ENV, '1')
    load_checkpoint_file(path)
    assert marker.read_text() == 'ran'


def run_toy(work_dir, iters, resume):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='')
    env.pop(TRUST_ENV, None)
    proc = subprocess.run(
        [sys.executable, TOY, str(work_dir), str(iters), '1' if resume else '0'],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith('WEIGHTS')][-1]
    return line.split()[1:]


def test_resume_is_bit_exact_through_the_safe_loader(tmp_path):
    run_toy(tmp_path / 'a', 2, False)
    first = str(tmp_path / 'a' / 'iter_2.pth')
    # mmengine's checkpoint needs globals that torch alone refuses; the allow-list admits exactly those.
    names = torch.serialization.get_unsafe_globals_in_checkpoint(first)
    assert {'mmengine.logging.history_buffer.HistoryBuffer', 'builtins.getattr'} <= set(names)
    assert unsafe_globals(first) == []
    with pytest.raises(Exception, match='HistoryBuffer'):
        torch.load(first, weights_only=True)
    resumed = run_toy(tmp_path / 'a', 4, True)
    straight = run_toy(tmp_path / 'b', 4, False)
    assert resumed == straight  # the printed weights, digit for digit


def test_one_loader_whatever_the_import_order():
    """The hash check and the safe read are one registered loader, not wrappers that an import
    order could stack or drop."""
    code = (
        'import omniris_mm.compat as c; c.apply(); import mmengine.runner.checkpoint as m; import omniris_mm; '
        'import omniris_mm.engine.checkpoint as e; c.apply(); '
        "print(m.CheckpointLoader._schemes[''] is e.load_from_local, "
        "m.CheckpointLoader._schemes['https://'] is e.load_from_http, m.load_from_http is e.load_from_http)"
    )
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.stdout.split() == ['True', 'True', 'True'], out.stderr[-2000:]
