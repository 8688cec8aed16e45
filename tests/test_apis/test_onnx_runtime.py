"""The inference path as ONNX graphs (tools/deployment/export_onnx.py) run on ONNX Runtime: the same answers.

The tiny config of the quickstart (text, references, clicks on the target, negative exemplars, the instance
branch) with random weights: every graph output within 1e-3 relative L2 of PyTorch's (measured: about 1e-6),
the same union-mask argmax on at least 99.9 % of the pixels, batches of other sizes and prompt lengths than
the export's example. The Swin-B config's check is in the README (a few minutes on 2 cores)."""

import glob
import os.path as osp
import subprocess
import sys

import mmcv
import numpy as np
import pytest
import torch
from conftest import REPO

from omniris_mm.apis import OmniRISInferencer

pytest.importorskip('onnxruntime')
from omniris_mm.apis.onnx_runtime import (  # noqa: E402
    ONNXRuntimeInferencer,
    compare_with_pytorch,
    example_requests,
    export_onnx,
)

CONFIG = osp.join(REPO, 'configs', 'omnishapes', 'omnisegnet_tiny_2k_omnishapes_all.py')


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp('onnx')
    torch.manual_seed(0)
    model = OmniRISInferencer(CONFIG, device='cpu').model
    ckpt = str(root / 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    seconds = export_onnx(CONFIG, ckpt, str(root / 'graphs'))
    assert set(seconds) == {'reference_encoder', 'target', 'text_encoder'}
    return dict(
        ckpt=ckpt,
        dir=str(root / 'graphs'),
        torch=OmniRISInferencer(CONFIG, ckpt, device='cpu', cache_references=False),
        ort=ONNXRuntimeInferencer(CONFIG, str(root / 'graphs'), cache_references=False),
    )


@pytest.fixture(scope='module')
def images(omnishapes):
    paths = sorted(glob.glob(osp.join(omnishapes, 'images', '*.png')))
    return [mmcv.imread(p) for p in paths[24:27]] + [mmcv.imread(paths[4])]


def test_every_output_matches_pytorch_on_every_prompt_kind(exported, images):
    requests = example_requests(exported['torch'], images[0], images[3])
    kinds = [sorted(k for k in r if k != 'image') for r in requests]
    assert kinds == [['visual_prompts'], ['text'], ['text', 'visual_prompts'], ['points'], ['visual_prompts']]
    assert requests[-1]['visual_prompts'][1]['negative']
    figures = compare_with_pytorch(exported['torch'], exported['ort'], requests, repeats=1)
    outputs = ('target_mask', 'nt_logits', 'mask_features', 'objectness', 'instance_embed')
    for key in outputs + ('reference_tokens', 'text_tokens'):
        assert figures[key] <= 1e-3, (key, figures[key])
    assert figures['argmax_agreement'] >= 0.999 and figures['answer_agreement'] >= 0.999
    assert figures['ratio'] == pytest.approx(figures['onnxruntime_s'] / figures['pytorch_s'])


def test_batches_of_other_sizes_and_prompt_lengths_answer_alike(exported, images):
    """Three targets in one call (rows and lengths the export never saw), a text of another length."""
    h, w = images[3].shape[:2]
    ref = dict(image=images[3], box=(w / 4, h / 4, w / 2, h / 2))
    items = [
        dict(image=images[0], text='all the red circles in the picture on the left', visual_prompts=[ref, ref]),
        dict(image=images[1], visual_prompts=[ref]),
        dict(image=images[2], text='squares'),
    ]
    want = exported['torch'](items, batch_size=3)
    got = exported['ort'](items, batch_size=3)
    for a, b in zip(got, want):
        assert a['no_target'] == b['no_target']
        assert a['no_target_score'] == pytest.approx(b['no_target_score'], abs=1e-4)
        assert (a['union_mask'] == b['union_mask']).mean() >= 0.999
        assert len(a['scores']) == len(b['scores'])
        np.testing.assert_allclose(a['scores'], b['scores'], atol=1e-4)


def test_the_runner_names_what_does_not_fit(exported, tmp_path):
    with pytest.raises(FileNotFoundError, match='no omniris_onnx.json; write the graphs with'):
        ONNXRuntimeInferencer(CONFIG, str(tmp_path))
    other = osp.join(REPO, 'configs', 'omnisegnet_swinb.py')  # 480 x 480, the graphs take 128 x 128
    with pytest.raises(ValueError, match=r'exported for \[128, 128\] inputs, the config resizes to \(480, 480\)'):
        ONNXRuntimeInferencer(other, exported['dir'])


def test_the_export_command_checks_and_times(exported, tmp_path):
    tool = osp.join(REPO, 'tools', 'deployment', 'export_onnx.py')
    run = subprocess.run([sys.executable, tool, CONFIG, exported['ckpt'], str(tmp_path / 'out'), '--check',
                          '--repeats', '1'], capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'exported to' in run.stdout and 'argmax agreement 100.000 %' in run.stdout
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [
        'omniris_onnx.json', 'reference_encoder.onnx', 'target.onnx', 'text_encoder.onnx'
    ]  # fmt: skip
