import os
import os.path as osp
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED_DATA = osp.join(osp.dirname(REPO), 'shared', 'data')
sys.path.insert(0, osp.join(REPO, 'tools', 'dataset_converters'))

import omniris_mm  # noqa: E402,F401  (registers the modules)


def load_tool(*parts):
    """A script under tools/ imported as a module (tools/ is not a package)."""
    return load_script('tools', *parts)


def load_script(*parts):
    """A script of the repository (tools/, demo/, .dev_scripts/) imported as a module."""
    import importlib.util

    path = osp.join(REPO, *parts)
    spec = importlib.util.spec_from_file_location(osp.splitext(parts[-1])[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A sample with everything loaded and packed, at its own size (the configs' pipelines without resizing).
PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadOmniAnnotations'),
    dict(type='LoadVisualPrompts'),
    dict(type='SynthesizePromptMaps'),
    dict(type='PackOmniInputs'),
]

CXX_ABORT = 'terminate called without an active exception'


def run_distributed(cmd, cleanup=None, **kwargs):
    """``subprocess.run(cmd)`` of a multi-process run, rerun once if it aborts in C++ at shutdown
    (SIGABRT, "terminate called without an active exception": seen now and then on the 2-core CI
    machine after a finished gloo run). A second abort is returned as it is, and fails the test."""
    import subprocess
    import warnings

    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0 and CXX_ABORT in proc.stdout + proc.stderr:
        warnings.warn(f'multi-process run aborted in C++ (SIGABRT), retried once: {cmd}', RuntimeWarning, 2)
        if cleanup is not None:
            cleanup()
        proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    return proc


def shared(*parts):
    """Path under ../shared/data. When that data is absent the test is skipped, except in CI
    (``CI=true``), where a missing data set is a failure: a green run must have run every test."""
    path = osp.join(SHARED_DATA, *parts)
    if not osp.exists(path):
        if os.environ.get('CI', '').lower() == 'true':
            pytest.fail(f'shared data missing in CI: {path}')
        pytest.skip(f'shared data not available: {path}')
    return path


@pytest.fixture(scope='session')
def omnishapes(tmp_path_factory):
    """A small OmniShapes set (24 train and 8 test images), written once per session."""
    from make_omnishapes import build

    root = tmp_path_factory.mktemp('omnishapes')
    build(str(root), num_train=24, num_test=8, seed=0)
    return str(root)
