"""The fast attention forms equal the originals (mmcv's / mmdet's own code as the reference)."""

import copy

import pytest
import torch
from mmcv.ops import MultiScaleDeformableAttention
from mmdet.models.backbones.swin import ShiftWindowMSA, WindowMSA
from model_utils import build_model

from omniris_mm.models.layers.fast_attention import (
    GatherMSDeformAttn,
    SDPAShiftWindowMSA,
    SDPAWindowMSA,
    swap_modules,
)

FAST = {
    'model.backbone.window_attn': 'sdpa',
    'model.head.deform_attn': 'gather',
    'model.prompt_encoder.deform_attn': 'gather',
}
ORIGINAL = {
    'model.backbone.window_attn': 'mmdet',
    'model.head.deform_attn': 'mmcv',
    'model.prompt_encoder.deform_attn': 'mmcv',
}


def rel_l2(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize('ref_dims', [2, 4])
def test_gather_deform_attn_equals_mmcv_forward_and_backward(ref_dims):
    torch.manual_seed(0)
    shapes = torch.tensor([[5, 7], [10, 13], [20, 25]])
    start = torch.cat([shapes.new_zeros(1), shapes.prod(1).cumsum(0)[:-1]])
    ref = MultiScaleDeformableAttention(32, 4, 3, 4, dropout=0.0, batch_first=True)
    for p in ref.parameters():  # offsets large enough to sample outside every level too
        torch.nn.init.normal_(p, std=0.5)
    fast = swap_modules(copy.deepcopy(ref), deform_attn='gather')
    assert type(fast) is GatherMSDeformAttn and fast.state_dict().keys() == ref.state_dict().keys()
    b, q, v = 2, 30, int(shapes.prod(1).sum())
    query = torch.randn(b, q, 32, requires_grad=True)
    value = torch.randn(b, v, 32, requires_grad=True)
    pad = torch.rand(b, v) < 0.2
    ref_pts = torch.rand(b, q, 3, ref_dims)
    outs, grads = [], []
    for m in (ref, fast):
        query.grad = value.grad = None
        out = m(
            query,
            value=value,
            key_padding_mask=pad,
            reference_points=ref_pts,
            spatial_shapes=shapes,
            level_start_index=start,
        )
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        outs.append(out.detach())
        grads.append([query.grad.clone(), value.grad.clone()] + [p.grad.clone() for p in m.parameters()])
        m.zero_grad()
    assert rel_l2(outs[1], outs[0]) < 1e-5
    for got, want in zip(grads[1], grads[0]):
        assert rel_l2(got, want) < 1e-4


def test_sdpa_window_attention_equals_mmdet_with_and_without_shift():
    """Padding included: the fast form projects only the real tokens and gives the padding
    the projection of zero, which must equal mmdet's projection of the zero-padded map."""
    torch.manual_seed(0)
    # Padded (15 x 20 -> 18 x 24: 12 windows) and not (18 x 24), each with and without the shift:
    # the four ways between the token map and the windows.
    for shift, hw in ((0, (15, 20)), (3, (15, 20)), (0, (18, 24)), (3, (18, 24))):
        ref = ShiftWindowMSA(32, 4, window_size=6, shift_size=shift)
        torch.nn.init.normal_(ref.w_msa.relative_position_bias_table, std=1.0)
        torch.nn.init.normal_(ref.w_msa.qkv.bias, std=1.0)  # the padding's keys and values matter
        fast = swap_modules(copy.deepcopy(ref), window_attn='sdpa')
        assert type(fast) is SDPAShiftWindowMSA and type(fast.w_msa) is SDPAWindowMSA
        assert fast.state_dict().keys() == ref.state_dict().keys()
        x = torch.randn(2, hw[0] * hw[1], 32, requires_grad=True)
        outs, grads = [], []
        for m in (ref, fast):
            x.grad = None
            out = m(x, hw)
            (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
            outs.append(out.detach())
            grads.append([x.grad.clone()] + [p.grad.clone() for p in m.parameters()])
        assert rel_l2(outs[1], outs[0]) < 1e-5
        for got, want in zip(grads[1], grads[0]):
            assert rel_l2(got, want) < 1e-4
        with torch.no_grad():  # inference: SDPA's CPU flash kernel
            assert rel_l2(fast(x, hw), ref(x, hw)) < 1e-5
    # The module alone too (a WindowMSA built outside a ShiftWindowMSA).
    alone = swap_modules(copy.deepcopy(ref.w_msa), window_attn='sdpa')
    windows = torch.randn(6, 36, 32)
    assert rel_l2(alone(windows), ref.w_msa(windows)) < 1e-5
    back = swap_modules(fast, window_attn='mmdet')
    assert type(back) is ShiftWindowMSA and type(back.w_msa) is WindowMSA
    with pytest.raises(ValueError, match='window_attn'):
        swap_modules(back, window_attn='flash')


def test_fast_path_answers_equal_the_reference_on_the_tiny_model(omnishapes):
    """Every model output of the tiny config with both fast forms, within 1e-4 of the originals
    (mmdet's / mmcv's modules)."""
    from model_utils import Samples

    samples = Samples(omnishapes)
    ref = build_model(seed=0, options=ORIGINAL).eval()
    fast = build_model(seed=0, options=FAST).eval()
    assert any(isinstance(m, GatherMSDeformAttn) for m in fast.head.modules())
    assert any(isinstance(m, GatherMSDeformAttn) for m in fast.prompt_encoder.modules())
    assert any(isinstance(m, SDPAWindowMSA) for m in fast.backbone.modules())
    fast.load_state_dict(ref.state_dict())
    batch = samples.batch(samples.pack('text'), samples.pack('visual', prompt_type='scribble'), samples.pack('omni'))
    with torch.no_grad():
        want = ref(**ref.data_preprocessor(batch, False), mode='tensor')
        got = fast(**fast.data_preprocessor(batch, False), mode='tensor')
    assert want.keys() == got.keys()
    for key, value in want.items():
        if torch.is_tensor(value) and value.is_floating_point():
            assert rel_l2(got[key], value) < 1e-4, key


def test_our_configs_use_the_fast_forms():
    """The Swin-B configs (and those that inherit them) build the fast forms; the tiny ones the
    originals (faster at their widths)."""
    from mmengine.config import Config

    for path in ('configs/omnisegnet_swinb.py', 'configs/omnisegnet/omnisegnet_swinb_release.py'):
        model = Config.fromfile(path).model
        assert model.backbone.window_attn == 'sdpa', path
        assert model.head.deform_attn == model.prompt_encoder.deform_attn == 'gather', path
    kinds = {type(m) for m in build_model(seed=0).modules()}
    assert not {GatherMSDeformAttn, SDPAShiftWindowMSA, SDPAWindowMSA} & kinds
    assert {MultiScaleDeformableAttention, ShiftWindowMSA, WindowMSA} <= kinds


def test_compiled_submodules_keep_their_keys_and_answers(omnishapes):
    """compile_modules compiles in place: the same state-dict keys, the same outputs (1e-4)."""
    from model_utils import Samples

    samples = Samples(omnishapes)
    eager = build_model(seed=0).eval()
    compiled = build_model(seed=0, options={'model.compile_modules': ['head.pixel_decoder']}).eval()
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    compiled.load_state_dict(eager.state_dict())
    batch = samples.batch(samples.pack('text'), samples.pack('visual', prompt_type='box'))
    with torch.no_grad():
        want = eager(**eager.data_preprocessor(batch, False), mode='tensor')
        got = compiled(**compiled.data_preprocessor(batch, False), mode='tensor')
    for key, value in want.items():
        if torch.is_tensor(value) and value.is_floating_point():
            assert rel_l2(got[key], value) < 1e-4, key
    with pytest.raises(ValueError, match='no submodule'):
        build_model(seed=0, options={'model.compile_modules': ['head.pixel_decodr']})


def test_checkpointed_backbone_trains_to_the_same_gradients(omnishapes):
    """``backbone.checkpoint_stages`` (mmdet Swin's activation checkpointing, the benchmark's
    ``train-step-cp``) around the SDPA window attention: the blocks of those stages run their
    attention again in the backward pass, the others do not, and the losses and gradients are
    those without checkpointing."""
    from model_utils import Samples

    samples = Samples(omnishapes)
    batch = samples.batch(samples.pack('visual', prompt_type='box'), samples.pack('text'))
    losses, grads = {}, {}
    for cp in (False, True):
        options = {**FAST, 'model.backbone.checkpoint_stages': [0] if cp else None}
        model = build_model(seed=0, options=options).train()
        attns = [model.backbone.stages[i].blocks[0].attn for i in (0, 1)]
        assert all(isinstance(a, SDPAShiftWindowMSA) for a in attns)
        calls = [0, 0]
        for i, attn in enumerate(attns):
            attn.register_forward_hook(lambda *_, i=i, calls=calls: calls.__setitem__(i, calls[i] + 1))
        torch.manual_seed(1)  # the same sampled loss points in both runs
        out = model(**model.data_preprocessor(batch, True), mode='loss')
        # Two samples: the target pass and the reference image's pass each run a block once.
        assert calls == [2, 2]
        sum(v for k, v in out.items() if 'loss' in k).backward()
        assert calls == ([4, 2] if cp else [2, 2])
        losses[cp] = {k: float(v) for k, v in out.items()}
        grads[cp] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert losses[True] == pytest.approx(losses[False], rel=1e-6)
    assert grads[True].keys() == grads[False].keys() and len(grads[False]) > 50
    names = list(grads[False])
    flat = {cp: torch.cat([grads[cp][n].flatten() for n in names]) for cp in grads}
    assert rel_l2(flat[True], flat[False]) < 1e-5
    floor = 1e-6 * flat[False].norm()  # some gradients are rounding noise (1e-8 to 1e-7)
    for name in names:
        g = grads[False][name]
        assert (grads[True][name] - g).norm() <= 1e-4 * g.norm() + floor, name
    with pytest.raises(ValueError, match=r'checkpoint_stages \[4\]'):
        build_model(seed=0, options={'model.backbone.checkpoint_stages': [0, 4]})
