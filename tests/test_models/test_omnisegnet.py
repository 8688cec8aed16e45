import copy

import pytest
import torch
from model_utils import Samples, build_model, tiny_cfg

from omniris_mm.models.detectors import OmniSegNet


@pytest.fixture(scope='module')
def samples(omnishapes):
    return Samples(omnishapes)


def one_of_each(s: Samples):
    """text; visual with mask, box and scribble; text + visual; two visual + text; no-target."""
    return [
        s.pack('text', lambda i: not i['gt_no_target']),
        s.pack('visual', lambda i: not i['gt_no_target'], prompt_type='mask'),
        s.pack('visual', lambda i: not i['gt_no_target'], prompt_type='box'),
        s.pack('visual', lambda i: not i['gt_no_target'], prompt_type='scribble'),
        s.pack('omni', lambda i: not i['gt_no_target'], prompt_type='box'),
        s.pack('omni', lambda i: not i['gt_no_target'], prompt_type='mask', extra_visual=1),
        s.pack('text', lambda i: i['gt_no_target']),
        s.pack('visual', lambda i: i['gt_no_target'], prompt_type='scribble'),
    ]


def test_every_prompt_combination_in_one_mixed_batch(samples):
    model = build_model()
    packed = one_of_each(samples)
    assert [p['data_samples'].prompt_types for p in packed] == [
        ['text'],
        ['mask'],
        ['box'],
        ['scribble'],
        ['text', 'box'],
        ['text', 'mask', 'scribble'],
        ['text'],
        ['scribble'],
    ]
    batch = samples.batch(*packed)
    data = model.data_preprocessor(batch, True)
    assert data['inputs'].shape[-2] % 32 == 0 and data['inputs'].shape[-1] % 32 == 0
    assert [len(s.ref_inputs) for s in data['data_samples']] == [0, 1, 1, 1, 1, 2, 0, 1]
    losses = model(**data, mode='loss')
    assert set(losses) == {
        'loss_mask',
        'loss_minimap',
        'loss_no_target',
        'loss_inst_cls',
        'loss_inst_mask',
        'loss_inst_dice',
    }
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
    prompts = model.encode_prompts(data['data_samples'])
    assert [len(p) for p in prompts] == [1, 1, 1, 1, 2, 3, 1, 1]
    tokens, valid = prompts[1][0]
    assert tokens.shape == (4, 384) and valid.all()  # 4 visual tokens in the text space

    model.eval()
    with torch.no_grad():
        out = model(**model.data_preprocessor(batch, False), mode='predict')
        tensors = model(**model.data_preprocessor(batch, False), mode='tensor')
    for sample in out:
        h, w = sample.ori_shape
        assert sample.pred_sem_seg.sem_seg.shape == (1, h, w)
        assert isinstance(sample.pred_no_target, bool)
        assert sample.pred_instances.masks.shape[1:] == (h, w)
        assert len(sample.pred_instances.scores) == len(sample.pred_instances.masks)
    assert tensors['target_mask'].shape[:2] == (8, 2) and tensors['minimap'].shape == (8, 2, 4, 4)
    assert tensors['nt_logits'].shape == (8, 2) and tensors['objectness'].shape == (8, 16, 2)


def test_every_trainable_parameter_gets_a_gradient(samples):
    model = build_model(trainable_text=True)
    batch = samples.batch(*one_of_each(samples))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    grads = {}
    for _ in range(2):  # zero-initialised gates and prompt attention only pass gradients after a step
        opt.zero_grad()
        losses = model(**model.data_preprocessor(batch, True), mode='loss')
        sum(losses.values()).backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
        opt.step()
    missing = sorted(n for n, g in grads.items() if g is None or not g.abs().sum() > 0)
    # The maps of prompts on the target only see such prompts (tests/test_models/test_target_maps.py).
    assert missing == [f'target_map_embed.{i}.{p}' for i in range(4) for p in ('bias', 'weight')], missing
    frozen = sorted(n for n, p in model.named_parameters() if not p.requires_grad)
    assert frozen == []  # the tiny BERT trains; the MiniLM of the tiny config is frozen on purpose


def test_frozen_parameters_of_the_tiny_config_are_only_the_text_encoder():
    model = build_model()
    frozen = {n.split('.')[0] for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {'text_encoder'}


def test_union_fusion_ors_the_single_prompt_answers(samples):
    model = build_model(fusion='union')
    model.eval()
    omni = samples.pack('omni', lambda i: not i['gt_no_target'], prompt_type='mask')
    with torch.no_grad():
        both = model(**model.data_preprocessor(samples.batch(omni), False), mode='predict')[0]
        text_only, visual_only = (samples.batch(copy.deepcopy(omni)) for _ in range(2))
        text_only['data_samples'][0].ref_imgs = []
        text_only['data_samples'][0].prompt_maps = []
        text_only['data_samples'][0].set_metainfo(dict(prompt_types=['text']))
        visual_only['data_samples'][0].set_metainfo(dict(text=None, prompt_types=['mask']))
        t = model(**model.data_preprocessor(text_only, False), mode='predict')[0]
        v = model(**model.data_preprocessor(visual_only, False), mode='predict')[0]
    expected = torch.maximum(t.pred_sem_seg.sem_seg, v.pred_sem_seg.sem_seg)
    assert torch.equal(both.pred_sem_seg.sem_seg, expected)
    assert both.pred_no_target == (t.pred_no_target and v.pred_no_target)
    with pytest.raises(ValueError, match='single-prompt'):
        model.train()
        model(**model.data_preprocessor(samples.batch(omni), True), mode='loss')


def test_cached_reference_tokens_give_the_same_answer(samples):
    model = build_model()
    model.eval()
    packed = samples.pack('visual', lambda i: not i['gt_no_target'], prompt_type='box')
    with torch.no_grad():
        data = model.data_preprocessor(samples.batch(packed), False)
        plain = model(**data, mode='tensor')
        sample = data['data_samples'][0]
        sample.visual_tokens = model.encode_references(sample.ref_inputs, sample.ref_prompt_maps)
        sample.ref_inputs = sample.ref_inputs[:0]  # nothing left to encode
        cached = model(**data, mode='tensor')
    torch.testing.assert_close(cached['target_mask'], plain['target_mask'])


def test_bad_configs_fail_clearly():
    with pytest.raises(ValueError, match='fusion'):
        build_model(fusion='late')
    with pytest.raises(ValueError, match='must equal the prompt token width'):
        build_model(
            prompt_encoder=dict(
                type='OmniPromptEncoder',
                in_channels=(32, 64, 128, 256),
                embed_dims=32,
                out_dims=100,
                num_queries=4,
                query_grid=(2, 2),
            )
        )
    assert OmniSegNet.__mro__[1].__name__ == 'BaseDetector'


def test_init_weights_zeroes_the_head_prompt_attention_output():
    """SPEC: the head's prompt cross-attention starts as the identity (its output projection is zero);
    its layers sit in a list that init_weights must reach. The tiny configs opt out (zero_init_prompt_attn)."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')
    for zero_init in (True, False):
        cfg = tiny_cfg()
        cfg.model.head.zero_init_prompt_attn = zero_init
        model = MODELS.build(cfg.model)
        model.init_weights()
        out_proj = model.head.layers[0].prompt_attn.out_proj
        assert (not out_proj.weight.any() and not out_proj.bias.any()) == zero_init
        assert all(layer.prompt_attn is None for layer in model.head.layers[1:])


def test_visual_only_model_without_a_text_encoder(samples):
    """text_encoder=None: a visual-prompt model whose token width is prompt_dims; a text prompt is a clear error."""
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope('mmdet')
    cfg = tiny_cfg()
    cfg.model.update(text_encoder=None, prompt_dims=32)
    cfg.model.backbone.prompt_dims = cfg.model.prompt_encoder.out_dims = cfg.model.head.prompt_dims = 32
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert model.text_encoder is None and model.text_norm is None
    visual = samples.batch(samples.pack('visual', prompt_type='mask'), samples.pack('visual', prompt_type='box'))
    losses = model(**model.data_preprocessor(visual, True), mode='loss')
    assert losses['loss_mask'] > 0 and all(torch.isfinite(v).all() for v in losses.values())
    with pytest.raises(ValueError, match='no text encoder'):
        model(**model.data_preprocessor(samples.batch(samples.pack('text')), True), mode='loss')
    cfg.model.prompt_dims = None
    with pytest.raises(ValueError, match='prompt_dims'):
        MODELS.build(cfg.model)
