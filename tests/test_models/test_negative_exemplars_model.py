"""A negative exemplar goes through the model with its own type embedding; where it cannot mean
"not like this" (no type embeddings, or one pass per prompt) the model says so."""

import os.path as osp

import pytest
import torch
from conftest import PIPELINE
from mmengine.dataset import pseudo_collate
from model_utils import build_model

from omniris_mm.datasets import CocoVisualPromptDataset
from omniris_mm.models import PROMPT_TYPES


@pytest.fixture(scope='module')
def batch(omnishapes):
    ds = CocoVisualPromptDataset(
        ann_file=osp.join(omnishapes, 'instances_train.json'),
        data_prefix=dict(img_path=osp.join(omnishapes, 'images')),
        targeted=False,
        no_target_per_image=0,
        negatives_per_image=1,
        prompt_type='mask',
        pipeline=PIPELINE[:3] + [dict(type='OmniResize', scale=(96, 96), keep_ratio=False)] + PIPELINE[3:],
        test_mode=True,
    )
    return pseudo_collate([ds[0], ds[1]])


def test_negative_exemplars_train_their_own_type_embedding(batch):
    assert all(s.prompt_types == ['mask', 'neg_mask'] for s in batch['data_samples'])
    model = build_model()
    losses = model(**model.data_preprocessor(batch, True), mode='loss')
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    grad = model.prompt_type_embed.weight.grad
    for i, t in enumerate(PROMPT_TYPES):
        assert bool(grad[i].abs().sum() > 0) == (t in ('mask', 'neg_mask')), t
    # The flag changes the answer: the same references, read as two positives, answer otherwise.
    model.eval()
    with torch.no_grad():
        neg = model(**model.data_preprocessor(batch, False), mode='tensor')
        for s in batch['data_samples']:
            s.set_metainfo(dict(prompt_types=['mask', 'mask']))
        pos = model(**model.data_preprocessor(batch, False), mode='tensor')
        for s in batch['data_samples']:
            s.set_metainfo(dict(prompt_types=['mask', 'neg_mask']))
    assert not torch.allclose(neg['target_mask'], pos['target_mask'])


@pytest.mark.parametrize(
    'options, message',
    [
        ({'model.prompt_type_embed': False}, "'neg_mask' prompt needs the prompt-type embeddings"),
        ({'model.fusion': 'union'}, r"fusion='union' answers each prompt on its own .* \(neg_mask\)"),
    ],
)
def test_a_model_that_cannot_read_a_negative_says_so(batch, options, message):
    model = build_model(options=options)
    with pytest.raises(ValueError, match=message):
        model(**model.data_preprocessor(batch, True), mode='loss')
