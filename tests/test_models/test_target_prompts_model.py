"""Prompts on the target image go through the same model, with their own type embeddings."""

import os.path as osp

import torch
from conftest import shared
from mmengine.dataset import pseudo_collate
from model_utils import build_model

from omniris_mm.models import PROMPT_TYPES

PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadOmniAnnotations'),
    dict(type='LoadVisualPrompts'),
    dict(type='OmniResize', scale=(128, 96), keep_ratio=False),
    dict(type='SynthesizePromptMaps', target_prompt_probs=dict(click=1.0), num_clicks=(4, 4)),
    dict(type='PackOmniInputs'),
]


def _dataset(**kwargs):
    from omniris_mm.datasets import CocoTargetPromptDataset

    root = shared('coco_val2017_sample')
    return CocoTargetPromptDataset(
        ann_file=osp.join(root, 'instances.json'),
        data_prefix=dict(img_path=root),
        min_area=2000,
        pipeline=kwargs.pop('pipeline', PIPELINE),
        test_mode=True,
        **kwargs,
    )


def test_clicks_train_their_own_type_embeddings_and_predict():
    ds = _dataset()
    packed = [ds[i] for i in range(len(ds))]
    with_neg = [p for p in packed if 'neg_click' in p['data_samples'].prompt_types]
    assert with_neg, 'no sample drew a negative click'
    box = _dataset(prompt_type='target_box', pipeline=PIPELINE[:4] + [dict(type='SynthesizePromptMaps')] + PIPELINE[5:])
    batch = pseudo_collate([with_neg[0], box[0]])
    model = build_model()
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss)
    loss.backward()
    grad = model.prompt_type_embed.weight.grad
    used = {'click', 'neg_click', 'target_box'}
    for i, t in enumerate(PROMPT_TYPES):
        assert bool(grad[i].abs().sum() > 0) == (t in used), t
    # the maps of the prompts on the target learn too (zero at first, so only their weights see a gradient path)
    assert all(conv.weight.grad.abs().sum() > 0 for conv in model.target_map_embed)

    model.eval()
    with torch.no_grad():
        (pred, _) = model(**model.data_preprocessor(batch, False), mode='predict')
    assert pred.pred_sem_seg.sem_seg.shape[1:] == tuple(pred.ori_shape)


def test_a_checkpoint_from_before_the_target_prompts_loads_its_four_type_rows():
    old = build_model(seed=1).state_dict()
    old['prompt_type_embed.weight'] = old['prompt_type_embed.weight'][:4].clone()
    model = build_model(seed=2)
    fresh = model.prompt_type_embed.weight.detach().clone()
    result = model.load_state_dict(old, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    table = model.prompt_type_embed.weight.detach()
    assert torch.equal(table[:4], old['prompt_type_embed.weight'])
    assert torch.equal(table[4:], fresh[4:]) and not torch.equal(table[:4], fresh[:4])
