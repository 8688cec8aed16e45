"""With the network disabled, the published config builds and the inferencer answers from a
checkpoint: no weight, configuration or vocabulary is fetched from the hub; only init_weights
(training from scratch) asks for the pretrained BERT."""

import os
import os.path as osp
import subprocess
import sys

from conftest import REPO, shared

SCRIPT = r"""
import socket, sys
def refuse(*args, **kwargs):
    raise OSError('network disabled by the test')
socket.socket.connect = refuse
socket.create_connection = refuse

import numpy as np, torch
import omniris_mm
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from omniris_mm.apis import OmniRISInferencer

config, ckpt, image = sys.argv[1:4]
init_default_scope('mmdet')
torch.manual_seed(0)
model = MODELS.build(Config.fromfile(config).model)
torch.save({'state_dict': model.state_dict()}, ckpt)
print('BUILT', sum(p.numel() for p in model.parameters()))
inferencer = OmniRISInferencer(config, weights=ckpt, device='cpu')
same = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), inferencer.model.state_dict().values()))
out = inferencer(image, text='the person on the left')['predictions'][0]
print('ANSWERED', out['union_mask'].shape, same)
try:
    model.text_encoder.init_weights()
except Exception as err:
    print('INIT_WEIGHTS_NEEDS_THE_HUB', type(err).__name__)
"""


def test_published_config_and_inferencer_work_offline(tmp_path):
    image = osp.join(shared('coco_val2017_sample'), '000000142238.jpg')
    env = {k: v for k, v in os.environ.items() if not k.startswith(('HF_', 'TRANSFORMERS_'))}
    env['HF_HOME'] = str(tmp_path / 'empty_hf_home')  # no cache to fall back on
    args = [osp.join(REPO, 'configs', 'omnisegnet_swinb.py'), str(tmp_path / 'w.pth'), image]
    proc = subprocess.run(
        [sys.executable, '-c', SCRIPT, *args], capture_output=True, text=True, timeout=600, cwd=REPO, env=env
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    lines = {ln.split()[0]: ln.split()[1:] for ln in proc.stdout.splitlines() if ln.split()}
    assert int(lines['BUILT'][0]) > 230_000_000  # Swin-B + BERT-base: the full model
    assert lines['ANSWERED'][-1] == 'True'  # the checkpoint's weights, all of them
    assert 'INIT_WEIGHTS_NEEDS_THE_HUB' in lines
