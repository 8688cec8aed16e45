"""Each switch that selects a behaviour of the published release, on its own, on CPU-sized
modules; expected values are computed here from the definitions, not by the code under test."""

import copy

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS
from mmengine.registry import init_default_scope
from model_utils import build_model, tiny_cfg

from omniris_mm.models import RELEASE_BEHAVIOURS, OmniPromptEncoder, PromptFusedSwin, release_differences
from omniris_mm.models.heads.referring_decoder import ReferringDecoderLayer

init_default_scope('mmdet')
SWIN = dict(
    embed_dims=16, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), window_size=4, mlp_ratio=2, pretrain_img_size=64
)


def _randomise(module, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return module


def _fusion_outputs(swin, x, tokens, mask):
    seen = []
    handles = [f.register_forward_hook(lambda m, a, o: seen.append(o)) for f in swin.fusions]
    outs = swin(x, tokens, mask)
    for h in handles:
        h.remove()
    return outs, seen


def test_backbone_stage_out_fusion_is_the_norm_of_the_fusion_output():
    torch.manual_seed(0)
    x, tokens = torch.randn(1, 3, 64, 64), torch.randn(1, 4, 8)
    mask = torch.tensor([[True, True, True, False]])
    ours = _randomise(PromptFusedSwin(prompt_dims=8, **SWIN))
    release = PromptFusedSwin(prompt_dims=8, stage_out='fusion', **SWIN)
    release.load_state_dict(ours.state_dict())
    ours.eval(), release.eval()  # mmdet's SwinTransformer.train returns None
    outs, fusions = _fusion_outputs(release, x, tokens, mask)
    for i, (out, f) in enumerate(zip(outs, fusions)):
        norm = getattr(release, f'norm{i}')
        expected = norm(f).view(1, *out.shape[-2:], -1).permute(0, 3, 1, 2)
        torch.testing.assert_close(out, expected)
    # Ours outputs the norm of the gated sum instead; the next stage gets the gated sum either way,
    # so the fusion outputs (functions of the stage inputs) are the same in both.
    ours_outs, ours_fusions = _fusion_outputs(ours, x, tokens, mask)
    for a, b in zip(ours_fusions, fusions):
        torch.testing.assert_close(a, b)
    assert all(not torch.allclose(a, b, atol=1e-3) for a, b in zip(ours_outs, outs))
    # Without prompts (a reference image) both are the plain Swin.
    for a, b in zip(ours(x), release(x)):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match='stage_out'):
        PromptFusedSwin(prompt_dims=8, stage_out='sum', **SWIN)


@pytest.mark.parametrize('gate_zero_init, expect_gradient', [('output', True), ('both', False)])
def test_gate_zero_init_both_closes_the_gates_for_good(gate_zero_init, expect_gradient):
    torch.manual_seed(0)
    swin = PromptFusedSwin(prompt_dims=8, gate_zero_init=gate_zero_init, **SWIN)
    swin.init_weights()
    for gate in swin.fusion_gates.values():
        assert not gate[2].weight.any()
        assert bool(gate[0].weight.any()) == (gate_zero_init == 'output')
    outs = swin(torch.randn(1, 3, 64, 64), torch.randn(1, 4, 8), torch.ones(1, 4, dtype=torch.bool))
    sum(o.square().mean() for o in outs).backward()
    grads = [p.grad for gate in swin.fusion_gates.values() for p in gate.parameters()]
    # Both projections zero: d/dW2 = delta * relu(W1 f) = 0 and d/dW1 = W2^T delta ... = 0.
    assert any(g is not None and g.abs().sum() > 0 for g in grads) == expect_gradient


def _prompt_encoder(**kwargs):
    return OmniPromptEncoder(
        in_channels=(8, 16, 32, 64),
        embed_dims=16,
        out_dims=24,
        num_queries=4,
        query_grid=(2, 2),
        num_layers=1,
        num_heads=2,
        num_points=2,
        ffn_dims=32,
        **kwargs,
    )


def test_prompt_region_nearest_resizes_and_max_pool_keeps_thin_regions():
    prompt = torch.zeros(1, 1, 8, 8)
    prompt[..., 1, 1] = 1  # one pixel; nearest to 2 x 2 takes rows and columns floor(4 j) = 0, 4
    nearest = _prompt_encoder(prompt_region='nearest')._region(prompt, (2, 2))
    pooled = _prompt_encoder(prompt_region='max_pool')._region(prompt, (2, 2))
    assert not nearest.any()
    assert pooled.tolist() == [[[True, False], [False, False]]]
    prompt[..., 4, 0] = 1  # a picked pixel: row 4 -> 1, column 0 -> 0
    assert _prompt_encoder(prompt_region='nearest')._region(prompt, (2, 2)).tolist() == [
        [[False, False], [True, False]]
    ]
    with pytest.raises(ValueError, match='prompt_region'):
        _prompt_encoder(prompt_region='bilinear')


def test_prompt_embedding_relu_and_eps():
    release = _randomise(_prompt_encoder(downscale_relu=True, norm_eps=1e-6))
    ours = _prompt_encoder()
    norms = [m for m in release.modules() if type(m).__name__ == 'LayerNorm2d']
    assert len(norms) == 5 and {m.eps for m in norms} == {1e-6}
    assert {m.eps for m in ours.modules() if type(m).__name__ == 'LayerNorm2d'} == {1e-5}
    levels = release.embed_prompt((torch.rand(1, 1, 64, 64) > 0.5).float())
    # Each stride-8/16/32 block is conv -> LayerNorm2d (eps 1e-6) -> ReLU: recompute it.
    x = levels[0]
    for down, level in zip(release.prompt_downscale, levels[1:]):
        y = down[0](x)
        y = F.layer_norm(y.permute(0, 2, 3, 1), (y.shape[1],), down[1].weight, down[1].bias, 1e-6).permute(0, 3, 1, 2)
        torch.testing.assert_close(level, y.clamp(min=0))
        x = level
    assert not any(isinstance(m, torch.nn.ReLU) for down in ours.prompt_downscale for m in down)


def _decoder_layer(mode):
    torch.manual_seed(0)
    layer = ReferringDecoderLayer(8, 2, 16, with_prompt_attn=True, zero_init_prompt_attn=False, prompt_attn_mode=mode)
    layer.init_weights()
    return _randomise(layer).eval()


def test_gated_prompt_attention_is_the_gated_residual_without_query_position():
    layer = _decoder_layer('gated')
    assert layer.lang_weight.shape == ()
    q, pos, mem, mem_pos = torch.randn(1, 3, 8), torch.randn(1, 3, 8), torch.randn(1, 5, 8), torch.randn(1, 5, 8)
    prompts = torch.randn(1, 4, 8)
    attn = torch.zeros(2, 3, 5, dtype=torch.bool)
    seen = {}
    layer.self_attn_ffn.register_forward_pre_hook(lambda m, a: seen.__setitem__('q', a[0]))
    layer(q, pos, mem, mem_pos, attn, prompts, None)
    with torch.no_grad():
        x = layer.norm_cross(q + layer.cross_attn(q + pos, mem + mem_pos, mem, attn_mask=attn)[0])
        attended = layer.norm_prompt(x + layer.prompt_attn(x, prompts, prompts)[0])
        expected = x + 0.1 * torch.sigmoid(layer.lang_weight) * attended
    torch.testing.assert_close(seen['q'], expected)
    fresh = ReferringDecoderLayer(8, 2, 16, with_prompt_attn=True, prompt_attn_mode='gated')
    fresh.init_weights()
    assert float(fresh.lang_weight) == 0.0  # the release starts the gate at sigmoid(0) = 0.5
    replace = _decoder_layer('replace')
    assert not hasattr(replace, 'lang_weight')
    with pytest.raises(ValueError, match='prompt_attn_mode'):
        ReferringDecoderLayer(8, 2, 16, with_prompt_attn=True, prompt_attn_mode='sum')


def _head_model(**head):
    return build_model(head=head)


def _run_head(model, tokens, mask, size=64):
    torch.manual_seed(1)
    feats = [torch.randn(1, c, size // s, size // s) for c, s in zip((32, 64, 128, 256), (4, 8, 16, 32))]
    with torch.no_grad():
        return model.head(feats, tokens, mask)


def test_minimap_merge_logits_uses_the_raw_minimap_scores():
    model = _head_model(minimap_merge='logits').eval()
    tokens, mask = torch.randn(1, 6, 384), torch.ones(1, 6, dtype=torch.bool)
    seen = {}
    model.head.mask_embed.register_forward_hook(lambda m, a, o: seen.__setitem__('embed', o))
    out = _run_head(model, tokens, mask)
    minimap = out['minimap'].flatten(2).transpose(1, 2)  # (1, Q, 2), raw logits
    expected = torch.einsum('bqk,bqc,bchw->bkhw', minimap, seen['embed'], out['mask_features'])
    torch.testing.assert_close(out['target_mask'], expected, rtol=1e-4, atol=1e-4)
    ours = _head_model().eval()
    ours.load_state_dict(model.state_dict())
    out = _run_head(ours, tokens, mask)
    expected = torch.einsum('bqk,bqc,bchw->bkhw', minimap.softmax(-1), seen['embed'], out['mask_features'])
    torch.testing.assert_close(out['target_mask'], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('mask_padding', [True, False])
def test_prompt_padding_is_ignored_or_attended(mask_padding):
    model = _head_model(mask_prompt_padding=mask_padding, zero_init_prompt_attn=False).eval()
    tokens, mask = torch.randn(1, 6, 384), torch.tensor([[True] * 4 + [False] * 2])
    changed = tokens.clone()
    changed[0, 4:] += 3.0
    a = _run_head(model, tokens, mask)['target_mask']
    b = _run_head(model, changed, mask)['target_mask']
    assert torch.allclose(a, b, atol=1e-5) == mask_padding


def test_zero_init_prompt_proj():
    assert not build_model(head=dict(zero_init_prompt_proj=True)).head.prompt_proj.weight.any()
    assert build_model().head.prompt_proj.weight.any()


def test_text_encoder_pads_to_max_tokens():
    from model_utils import TINY_BERT

    enc = MODELS.build(dict(TINY_BERT, pad_to_max_tokens=True))
    tokens, mask = enc(['the red circle', 'a square'])
    assert tokens.shape[:2] == (2, 20) and mask.sum(1).tolist() == [5, 4]
    longest, short_mask = MODELS.build(TINY_BERT)(['the red circle', 'a square'])
    assert longest.shape[1] == 5 and short_mask.sum(1).tolist() == [5, 4]


def test_no_prompt_type_embed_and_union_fusion_answer_per_prompt(omnishapes):
    from model_utils import Samples

    samples = Samples(omnishapes)
    model = build_model(prompt_type_embed=False, fusion='union')
    assert model.prompt_type_embed is None and 'prompt_type_embed.weight' not in model.state_dict()
    batch = samples.batch(samples.pack('omni'))
    data = model.data_preprocessor(batch, False)
    (prompts,) = model.encode_prompts(data['data_samples'])
    text_tokens, valid = prompts[0]
    with torch.no_grad():
        raw, raw_mask = model.text_encoder([data['data_samples'][0].metainfo['text']])
        torch.testing.assert_close(text_tokens, model.text_norm(raw)[0])  # nothing added
    assert torch.equal(valid, raw_mask[0])


def test_head_without_instance_criterion_has_no_instance_branch(omnishapes):
    from model_utils import Samples

    model = build_model(head=dict(instance_criterion=None)).eval()
    assert not hasattr(model.head, 'objectness') and not any('instance_embed' in k for k in model.state_dict())
    samples = Samples(omnishapes)
    batch = samples.batch(samples.pack('text'), samples.pack('visual'))
    with torch.no_grad():
        out = model(**model.data_preprocessor(batch, False), mode='predict')
    for s in out:
        assert len(s.pred_instances) == 0 and s.pred_instances.masks.shape[1:] == s.pred_sem_seg.sem_seg.shape[1:]


def test_pred_size_input_keeps_the_network_size(omnishapes):
    from model_utils import Samples

    samples = Samples(omnishapes)
    model = build_model(head=dict(test_cfg=dict(pred_size='input', empty_on_no_target=False))).eval()
    batch = samples.batch(samples.pack('visual'))
    data = model.data_preprocessor(batch, False)
    sample = data['data_samples'][0]
    h, w = sample.img_shape
    sample.set_metainfo(dict(ori_shape=(2 * h, 2 * w)))  # as if the pipeline had halved the image
    with torch.no_grad():
        logits = model(**data, mode='tensor')['target_mask']
        (pred,) = model(**data, mode='predict')
    up = F.interpolate(logits, sample.batch_input_shape, mode='bilinear', align_corners=False)[..., :h, :w]
    assert torch.equal(pred.pred_sem_seg.sem_seg[0], up[0].argmax(0).to(torch.uint8))
    model.head.test_cfg['pred_size'] = 'original'
    with torch.no_grad():
        (pred,) = model(**data, mode='predict')
    assert pred.pred_sem_seg.sem_seg.shape[1:] == (2 * h, 2 * w)
    with pytest.raises(ValueError, match='pred_size'):
        build_model(head=dict(test_cfg=dict(pred_size='native')))


@pytest.mark.parametrize('empty', [True, False])
def test_a_no_target_answer_clears_mask_and_instances_only_when_asked(omnishapes, empty):
    """empty_on_no_target=False (PASCAL-5i: every episode has a target) keeps the union mask and
    the instances of a (false) "no target" answer; True clears both."""
    from model_utils import Samples

    samples = Samples(omnishapes)
    # no_target_thr below 0: every answer is "no target"; instance_thr 0.2: some queries pass;
    # no clean-up (tested in test_instance_cleanup.py), so that every query passing is kept.
    test_cfg = dict(
        pred_size='input',
        no_target_thr=-1.0,
        instance_thr=0.2,
        empty_on_no_target=empty,
        instance_in_union=False,
        instance_nms=None,
    )
    model = build_model(head=dict(test_cfg=test_cfg)).eval()
    data = model.data_preprocessor(samples.batch(samples.pack('text')), False)
    sample = data['data_samples'][0]
    h, w = sample.img_shape
    with torch.no_grad():
        out = model(**data, mode='tensor')
        (pred,) = model(**data, mode='predict')
    assert pred.pred_no_target
    up = F.interpolate(out['target_mask'], sample.batch_input_shape, mode='bilinear', align_corners=False)
    union = up[0, :, :h, :w].argmax(0).to(torch.uint8)
    kept = int((out['objectness'][0].softmax(-1)[:, 0] > 0.2).sum())
    assert union.any() and kept > 0  # the case is not trivial
    if empty:
        assert not pred.pred_sem_seg.sem_seg.any() and len(pred.pred_instances) == 0
    else:
        assert torch.equal(pred.pred_sem_seg.sem_seg[0], union) and len(pred.pred_instances) == kept


def test_release_differences_name_every_switch_of_a_config():
    cfg = tiny_cfg().model
    lines = release_differences(cfg)
    named = [line.split('=')[0] for line in lines]
    assert 'head.minimap_merge' in named and 'fusion' in named and 'backbone.stage_out' in named
    release_like = copy.deepcopy(cfg)
    for b in RELEASE_BEHAVIOURS:
        target = release_like if b.component is None else release_like[b.component]
        if b.arg.startswith('test_cfg.'):
            target.setdefault('test_cfg', {})[b.arg[len('test_cfg.') :]] = b.release
        else:
            target[b.arg] = b.release
    assert release_differences(release_like) == []
    release_like.head.minimap_merge = 'softmax'
    assert release_differences(release_like) == [
        "head.minimap_merge='softmax' (release: 'logits'): the release: the merged mask weights the region masks "
        'by the raw minimap logits'
    ]
