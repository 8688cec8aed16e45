"""The inference path as ONNX graphs (tools/deployment/export_onnx.py) run on ONNX Runtime: the same answers.

The tiny config of the quickstart (text, references, clicks on the target, negative exemplars, the instance
branch) with random weights: every graph output within 1e-3 relative L2 of PyTorch's (measured: about 1e-6),
the same union-mask argmax on at least 99.9 % of the pixels, batches, prompt lengths and image sizes other
than the export's example. The Swin-B config's check is in the README (a few minutes on 2 cores) and in
tools/analysis_tools/benchmark.py's ``-onnx`` cases."""

import glob
import json
import os.path as osp
import subprocess
import sys

import mmcv
import numpy as np
import pytest
import torch
from conftest import REPO
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from omniris_mm.apis import OmniRISInferencer
from omniris_mm.apis.inferencer import config_test_pipeline

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
    want = exported['torch'](items, batch_size=3)['predictions']
    got = exported['ort'](items, batch_size=3)['predictions']
    for a, b in zip(got, want):
        assert a['no_target'] == b['no_target']
        assert a['no_target_score'] == pytest.approx(b['no_target_score'], abs=1e-4)
        assert (a['union_mask'] == b['union_mask']).mean() >= 0.999
        assert len(a['scores']) == len(b['scores'])
        np.testing.assert_allclose(a['scores'], b['scores'], atol=1e-4)


@pytest.mark.parametrize('resize', [dict(scale=(160, 96), keep_ratio=False), dict(scale=(200, 100), keep_ratio=True)])
def test_one_export_answers_other_image_sizes(exported, images, resize):
    """The graphs were exported with 128 x 128 images; a config resizing to 96 x 160, and one keeping the
    aspect ratio (a 96 x 128 target to 100 x 133 padded to 128 x 160, a 128 x 128 reference to 100 x 100
    padded to 128 x 128), answer as PyTorch does with every prompt kind."""
    cfg = Config.fromfile(CONFIG)
    next(step for step in config_test_pipeline(cfg) if step['type'] == 'OmniResize').update(resize)
    reference = OmniRISInferencer(cfg, exported['ckpt'], device='cpu', cache_references=False)
    runtime = ONNXRuntimeInferencer(cfg, exported['dir'], cache_references=False)
    target = images[0][:96] if resize['keep_ratio'] else images[0]
    figures = compare_with_pytorch(reference, runtime, example_requests(reference, target, images[3]), repeats=1)
    for key in ('target_mask', 'nt_logits', 'mask_features', 'objectness', 'instance_embed', 'reference_tokens'):
        assert figures[key] <= 1e-3, (key, figures[key])
    assert figures['argmax_agreement'] >= 0.999 and figures['answer_agreement'] >= 0.999
    packed = runtime.pack(dict(image=target, text='circles'))
    data = runtime.model.data_preprocessor(pseudo_collate([packed]), False)
    expected = (96, 160) if not resize['keep_ratio'] else (128, 160)
    assert tuple(data['inputs'].shape[-2:]) == expected
    assert tuple(runtime.runtime.outputs(data)[0]['target_mask'].shape[-2:]) == (expected[0] // 4, expected[1] // 4)


def test_the_runner_names_what_does_not_fit(exported, tmp_path):
    with pytest.raises(FileNotFoundError, match='no omniris_onnx.json; write the graphs with'):
        ONNXRuntimeInferencer(CONFIG, str(tmp_path))
    runtime = exported['ort'].runtime
    with pytest.raises(ValueError, match=r'multiples of 32 \(the data preprocessor pads them so with '
                                         r'pad_size_divisor=32\), got \[100, 128\]'):  # fmt: skip
        runtime.outputs(dict(inputs=torch.zeros(1, 3, 100, 128), data_samples=[]))
    # Graphs of the first export (one image size, no size_divisor in their meta file) are named.
    old = tmp_path / 'old'
    old.mkdir()
    with open(osp.join(exported['dir'], 'omniris_onnx.json')) as f:
        meta = json.load(f)
    meta.pop('size_divisor')
    meta['input_shape'] = [128, 128]
    (old / 'omniris_onnx.json').write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r'an earlier export, for \[128, 128\] images only: export again'):
        ONNXRuntimeInferencer(CONFIG, str(old))


def test_the_export_command_checks_and_times(exported, tmp_path):
    tool = osp.join(REPO, 'tools', 'deployment', 'export_onnx.py')
    run = subprocess.run([sys.executable, tool, CONFIG, exported['ckpt'], str(tmp_path / 'out'), '--check',
                          '--repeats', '1'], capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert 'exported to' in run.stdout and 'argmax agreement 100.000 %' in run.stdout
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [
        'omniris_onnx.json', 'reference_encoder.onnx', 'target.onnx', 'text_encoder.onnx'
    ]  # fmt: skip


def test_swinb_graphs_answer_as_pytorch_at_another_size(tmp_path):
    """The Swin-B model of our configs (BERT-base from its config; random weights, nothing downloaded)
    exported with 128 x 128 images answers a 96 x 160 target with a 160 x 160 reference, a text and a
    box, as PyTorch does: every output within 1e-3 relative L2, the mask argmax on 99.9 % of pixels."""
    sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))
    from benchmark import answer_change, build_omnisegnet, omni_batch
    from mmengine.registry import init_default_scope

    from omniris_mm.apis.onnx_runtime import ONNXRuntimeModel, export_model

    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = build_omnisegnet().eval()
    model.init_weights()
    assert type(model.backbone).__name__ == 'PromptFusedSwin' and model.backbone.num_features[-1] == 1024
    export_model(model, model.data_preprocessor(omni_batch(128, 2), False), str(tmp_path), (128, 128))
    runtime = ONNXRuntimeModel(model, str(tmp_path), num_threads=torch.get_num_threads())
    data = model.data_preprocessor(omni_batch(160, 1), False)
    data['inputs'] = data['inputs'][..., 32:128, :]
    with torch.no_grad():
        want = {k: v for k, v in model(**data, mode='tensor').items() if k in runtime.meta['target_outputs']}
    got = runtime.outputs(data)[0]
    assert got['target_mask'].shape[-2:] == (24, 40) and set(got) == set(want)
    change = answer_change(want, got)
    assert change['max_rel_l2'] <= 1e-3 and change['mask_agreement'] >= 0.999, change
