"""tools/train.py and tools/test.py run the tiny config with mmengine's stock Runner."""

import glob
import json
import os.path as osp
import subprocess
import sys

from conftest import REPO

CONFIG = osp.join(REPO, 'configs', 'omnishapes', 'omnisegnet_tiny_omnishapes.py')


def data_options(root):
    opts = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts += [f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
        opts += [f'{loader}.dataset.datasets.{i}.data_root={root}' for i in range(3)]
    return opts


def run(script, *args):
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', script), *args], capture_output=True, text=True, timeout=600, cwd=REPO
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_train_then_test(omnishapes, tmp_path):
    work = str(tmp_path / 'work')
    run(
        'train.py',
        CONFIG,
        '--work-dir',
        work,
        '--cfg-options',
        'train_cfg.max_iters=3',
        'train_cfg.val_interval=3',
        'default_hooks.checkpoint.interval=3',
        *data_options(omnishapes),
    )
    assert osp.isfile(osp.join(work, 'iter_3.pth'))
    out = run(
        'test.py',
        CONFIG,
        osp.join(work, 'iter_3.pth'),
        '--work-dir',
        str(tmp_path / 'test'),
        '--out',
        str(tmp_path / 'preds.pkl'),
        '--show-dir',
        'pictures',
        '--cfg-options',
        *data_options(omnishapes),
    )
    assert 'OmniRIS results' in out and osp.isfile(tmp_path / 'preds.pkl')
    [metrics_file] = glob.glob(str(tmp_path / 'test' / '*' / '*.json'))
    metrics = json.load(open(metrics_file))
    assert 'visual/scribble/gIoU' in metrics
    # The figures equal those computed from the definitions on the dumped predictions.
    import pickle

    import pytest
    from omniris_reference import reference_scores

    with open(tmp_path / 'preds.pkl', 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == len(set(p['img_path'] + p['record_id'] for p in preds)) > 0
    expected = reference_scores(
        (p['pred_sem_seg']['sem_seg'][0].numpy(), p['gt_sem_seg']['sem_seg'][0].numpy(), p['pred_no_target'],
         p['gt_no_target']) for p in preds
    )  # fmt: skip
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, nan_ok=True), key
    # One OmniRISVisualizer picture per test sample (several samples share a target image).
    import pickle

    preds = pickle.load(open(tmp_path / 'preds.pkl', 'rb'))
    pictures = glob.glob(str(tmp_path / 'test' / '*' / 'pictures' / '*'))
    assert len(pictures) == len(preds) > 0
    # Several configs in one tools/test.py: each tested in turn, in a folder of its own under the work
    # dir, with the figures of the one-config run above (the same model, checkpoint and data).
    again = tmp_path / 'omnisegnet_tiny_again.py'
    again.write_text(f'_base_ = [{CONFIG!r}]\n')
    out = run(
        'test.py',
        CONFIG,
        str(again),
        osp.join(work, 'iter_3.pth'),
        '--work-dir',
        str(tmp_path / 'both'),
        '--cfg-options',
        *data_options(omnishapes),
    )
    assert out.count('OmniRIS results') == 2
    for name in ('omnisegnet_tiny_omnishapes', 'omnisegnet_tiny_again'):
        [both_file] = glob.glob(str(tmp_path / 'both' / name / '*' / '*.json'))
        both = json.load(open(both_file))
        assert set(both) == set(metrics)
        for key, value in metrics.items():
            if key not in ('time', 'data_time'):
                assert both[key] == pytest.approx(value, nan_ok=True), (name, key)
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'test.py'), CONFIG, str(again), 'ckpt.pth', '--out', 'p.pkl'],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode != 0 and '--out takes one config' in proc.stderr
