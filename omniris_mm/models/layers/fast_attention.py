"""Faster CPU forms of two attention modules of the stack, equal in value to the originals.

- :class:`GatherMSDeformAttn`: mmcv's ``MultiScaleDeformableAttention`` whose CPU path samples
  with one ``F.embedding_bag`` over all levels, heads and points instead of mmcv's
  ``grid_sample`` per level followed by a stacked product (written here because mmcv's CPU
  path is its reference implementation and no maintained package ships a faster CPU one;
  measured 2.5-3x faster forward and backward at the pixel decoder's 480 x 480 shapes). On CUDA
  it runs mmcv's kernel.
- :class:`SDPAWindowMSA`: mmdet's Swin window attention through
  ``F.scaled_dot_product_attention`` (relative position bias and shift mask as one additive
  mask, built contiguous so that SDPA takes it without a copy), about 1.5x faster on the CPU;
  :class:`SDPAShiftWindowMSA` around it projects only the real tokens, not the padding to a
  multiple of the window, and moves the tokens into their shifted windows and back with one row
  gather each way instead of mmdet's pad, roll, partition, reverse, roll and crop.

Both only override ``forward``: their parameters, buffers and state-dict keys are the
originals', so :func:`swap_modules` turns built modules into them in place (mmdet builds these
modules inside its own layers, with no config hook for their class).
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.ops import MultiScaleDeformableAttention
from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction
from mmdet.models.backbones.swin import ShiftWindowMSA, WindowMSA
from torch import Tensor

DEFORM_ATTN_IMPLS = ('mmcv', 'gather')
WINDOW_ATTN_IMPLS = ('mmdet', 'sdpa')


def ms_deform_attn_gather(
    value: Tensor, spatial_shapes: Tensor, level_start_index: Tensor, locations: Tensor, weights: Tensor
) -> Tensor:
    """Multi-scale deformable attention sampling, the value of mmcv's
    ``multi_scale_deformable_attn_pytorch`` (bilinear, zero padding, ``align_corners=False``).

    value (B, V, heads, C); locations (B, Q, heads, levels, points, 2) as (x, y) in [0, 1];
    weights (B, Q, heads, levels, points) -> (B, Q, heads * C).

    Every sample is four corner rows of the value table with bilinear weights times its
    attention weight (zero for a corner outside the map); ``embedding_bag`` sums them per
    (query, head) in one pass, differentiable in the value, the locations and the weights.
    """
    b, v, heads, c = value.shape
    _, q, _, levels, points, _ = locations.shape
    h = spatial_shapes[:, 0].to(locations.dtype).view(levels, 1)
    w = spatial_shapes[:, 1].to(locations.dtype).view(levels, 1)
    x = locations[..., 0] * w - 0.5  # pixel coordinates, (B, Q, heads, levels, points)
    y = locations[..., 1] * h - 0.5
    x0, y0 = x.floor(), y.floor()
    fx, fy = x - x0, y - y0
    gx, gy = 1 - fx, 1 - fy
    # The value table's rows in the order of ``value`` itself, (batch, position, head): row
    # ((batch * V + position) * heads + head), so the table is a view, not a permuted copy. The
    # first row of each (batch, head, level): (B, 1, heads, levels, 1).
    first = (torch.arange(b, device=value.device).view(b, 1, 1, 1, 1) * v + level_start_index.view(levels, 1)) * heads
    first = first + torch.arange(heads, device=value.device).view(heads, 1, 1)
    # Per axis, once for the two neighbouring columns (rows): inside the map, and the clamped offset.
    xs, ys = (x0, x0 + 1), (y0, y0 + 1)
    inside_x = [(xi >= 0) & (xi <= w - 1) for xi in xs]
    inside_y = [(yi >= 0) & (yi <= h - 1) for yi in ys]
    col = [torch.minimum(xi.clamp(min=0), w - 1).long() * heads for xi in xs]
    row = [(torch.minimum(yi.clamp(min=0), h - 1) * w).long() * heads + first for yi in ys]
    index, weight = [], []
    for dy, dx, corner in ((0, 0, gy * gx), (0, 1, gy * fx), (1, 0, fy * gx), (1, 1, fy * fx)):
        index.append(row[dy] + col[dx])
        weight.append(corner * weights * (inside_y[dy] & inside_x[dx]))
    index = torch.stack(index, -1).reshape(b * q * heads, -1)
    weight = torch.stack(weight, -1).reshape(b * q * heads, -1)
    table = value.reshape(b * v * heads, c)
    dtype = torch.promote_types(table.dtype, weight.dtype)  # under autocast the value may be bfloat16
    out = F.embedding_bag(index, table.to(dtype), per_sample_weights=weight.to(dtype), mode='sum')
    return out.view(b, q, heads * c)


class GatherMSDeformAttn(MultiScaleDeformableAttention):
    """mmcv's ``MultiScaleDeformableAttention`` with :func:`ms_deform_attn_gather` on the CPU."""

    def forward(
        self,
        query: Tensor,
        key: Optional[Tensor] = None,
        value: Optional[Tensor] = None,
        identity: Optional[Tensor] = None,
        query_pos: Optional[Tensor] = None,
        key_padding_mask: Optional[Tensor] = None,
        reference_points: Optional[Tensor] = None,
        spatial_shapes: Optional[Tensor] = None,
        level_start_index: Optional[Tensor] = None,
        **kwargs,
    ) -> Tensor:
        """The arguments and result of mmcv's ``MultiScaleDeformableAttention.forward``."""
        value = query if value is None else value
        identity = query if identity is None else identity
        if query_pos is not None:
            query = query + query_pos
        if not self.batch_first:
            query, value = query.permute(1, 0, 2), value.permute(1, 0, 2)
        b, q, _ = query.shape
        value = self.value_proj(value)
        # A mask with no padding changes nothing; on the CPU its copy of the values is skipped (on
        # CUDA the check would wait for the device).
        if key_padding_mask is not None and (value.is_cuda or key_padding_mask.any()):
            value = value.masked_fill(key_padding_mask[..., None], 0.0)
        value = value.view(b, value.shape[1], self.num_heads, -1)
        offsets = self.sampling_offsets(query).view(b, q, self.num_heads, self.num_levels, self.num_points, 2)
        weights = self.attention_weights(query).view(b, q, self.num_heads, self.num_levels * self.num_points)
        weights = weights.softmax(-1).view(b, q, self.num_heads, self.num_levels, self.num_points)
        if reference_points.shape[-1] == 2:
            normalizer = torch.stack([spatial_shapes[..., 1], spatial_shapes[..., 0]], -1)
            locations = reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        elif reference_points.shape[-1] == 4:
            locations = (
                reference_points[:, :, None, :, None, :2]
                + offsets / self.num_points * reference_points[:, :, None, :, None, 2:] * 0.5
            )
        else:
            raise ValueError(f'reference_points must end in 2 or 4 values, got {reference_points.shape[-1]}')
        if value.is_cuda:
            out = MultiScaleDeformableAttnFunction.apply(
                value, spatial_shapes, level_start_index, locations, weights, self.im2col_step
            )
        else:
            out = ms_deform_attn_gather(value, spatial_shapes, level_start_index, locations, weights)
        out = self.output_proj(out)
        if not self.batch_first:
            out = out.permute(1, 0, 2)
        return self.dropout(out) + identity


class SDPAWindowMSA(WindowMSA):
    """mmdet's ``WindowMSA`` through ``F.scaled_dot_product_attention``."""

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """x (windows * B, N, C); mask (windows, N, N) additive, or None."""
        return self.proj_drop(self.proj(self.attend(self.qkv(x), mask)))

    def attend(self, qkv: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """The attention between the projections and the output projection:
        qkv (windows * B, N, 3C) -> (windows * B, N, C)."""
        b, n, c3 = qkv.shape
        c = c3 // 3
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        # (1, heads, N, N), contiguous: the sum with the shift mask then is too, and SDPA takes it
        # as it is (from the permuted table the sum came out heads-last, and SDPA copied it).
        bias = bias.permute(2, 0, 1).contiguous()[None]
        dropout = self.attn_drop.p if self.training else 0.0
        if mask is not None:
            windows = mask.shape[0]
            bias = bias + mask[:, None].to(bias.dtype)
            if b > windows and torch.is_grad_enabled() and bias.requires_grad:
                # Training: the bias broadcast over the images as a 5-d batch (images, windows)
                # instead of a copy per image, whose gradient would then be summed back. (At
                # inference the 4-d form below keeps the CPU flash kernel, which takes 4-d inputs.)
                q, k, v = (t.reshape(b // windows, windows, *t.shape[1:]) for t in (q, k, v))
                out = F.scaled_dot_product_attention(
                    q, k, v, attn_mask=bias.to(q.dtype), dropout_p=dropout, scale=self.scale
                )
                return out.flatten(0, 1).transpose(1, 2).reshape(b, n, c)
            if b > windows:
                bias = bias.repeat(b // windows, 1, 1, 1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=dropout, scale=self.scale)
        return out.transpose(1, 2).reshape(b, n, c)


class SDPAShiftWindowMSA(ShiftWindowMSA):
    """mmdet's ``ShiftWindowMSA`` with its window attention in :class:`SDPAWindowMSA` form, no
    projection of the padding and one copy each way between the token map and the windows.

    mmdet pads the tokens with zeros to a multiple of the window (at 480 x 480, Swin-B's stride-16
    map of 30 x 30 becomes 36 x 36 and the stride-32 map of 15 x 15 becomes 24 x 24), projects all
    of them, rolls the map by the shift, cuts it into windows, and after the attention puts the
    windows back, rolls back and crops: five copies of the map. Here the input projection runs on
    the real tokens only; one gather (:meth:`_window_index`) puts each token where the padding, the
    roll and the windows would have put it, and the padding's slots get their value, the projection
    of zero (the bias); after the attention one gather takes each real token's row back, in order,
    and the output projection runs on them. Pure data movement around the same products: the same
    value as mmdet's module (tested, with gradients). The shift mask and the indices are built once
    per map size."""

    def forward(self, query: Tensor, hw_shape) -> Tensor:
        b, length, c = query.shape
        h, w = hw_shape
        assert length == h * w, 'input feature has wrong size'
        msa, ws = self.w_msa, self.window_size
        pad_r, pad_b = (-w) % ws, (-h) % ws
        qkv = msa.qkv(query)  # (B, h * w, 3C), the real tokens only
        if self.shift_size == 0 and not (pad_r or pad_b):
            # Windows are a permutation of a view: mmdet's partition and reverse, one copy each.
            out = msa.attend(self.window_partition(qkv.view(b, h, w, 3 * c)).view(-1, ws * ws, 3 * c))
            x = self.window_reverse(out.view(-1, ws, ws, c), h, w).view(b, -1, c)
            return self.drop(msa.proj_drop(msa.proj(x)))
        hp, wp = h + pad_b, w + pad_r
        source, padding, back = self._window_index(h, w, hp, wp, query.device)
        windows = _rows(qkv, source)  # (B, windows * N, 3C), window by window
        if len(padding):  # the projection of zero
            windows[:, padding] = 0.0 if msa.qkv.bias is None else msa.qkv.bias.to(windows.dtype)
        mask = self._shift_mask(hp, wp, query.device) if self.shift_size > 0 else None
        out = msa.attend(windows.view(-1, ws * ws, 3 * c), mask)  # (B * windows, N, C)
        x = _rows(out.view(b, -1, c), back)  # (B, h * w, C), the real tokens in order
        return self.drop(msa.proj_drop(msa.proj(x)))

    def _window_index(self, h: int, w: int, hp: int, wp: int, device) -> Tuple[Tensor, Tensor, Tensor]:
        """For an h x w map padded to hp x wp: ``source`` (windows * N,) the token each window slot
        takes (slot order: windows row by row, then the tokens of a window row by row, of the map
        rolled by minus the shift, as mmdet's ``window_partition`` after ``torch.roll``; 0 for a
        padding slot), ``padding`` the padding's slots, ``back`` (h * w,) each token's slot."""
        cache = self.__dict__.setdefault('_window_indices', {})
        key = (h, w, hp, wp, str(device))
        if key not in cache:
            ws, shift = self.window_size, self.shift_size
            # The padded, rolled map's position (Y, X) holds the padded map's ((Y + s) % hp, (X + s) % wp).
            ys = (torch.arange(hp) + shift) % hp
            xs = (torch.arange(wp) + shift) % wp
            token = ys[:, None] * w + xs[None, :]
            real = (ys[:, None] < h) & (xs[None, :] < w)
            token = torch.where(real, token, -1)
            # Cut into windows: (hp / ws, ws, wp / ws, ws) -> (hp / ws, wp / ws, ws, ws).
            token = token.view(hp // ws, ws, wp // ws, ws).permute(0, 2, 1, 3).reshape(-1)
            padding = (token < 0).nonzero().flatten()
            back = torch.empty(h * w, dtype=torch.long)
            slots = (token >= 0).nonzero().flatten()
            back[token[slots]] = slots
            cache[key] = (token.clamp(min=0).to(device), padding.to(device), back.to(device))
        return cache[key]

    def _shift_mask(self, hp: int, wp: int, device) -> Tensor:
        """mmdet's shifted-window mask (windows, N, N): -100 between tokens of different
        regions of the rolled map, else 0."""
        cache = self.__dict__.setdefault('_shift_masks', {})
        key = (hp, wp, str(device))
        if key not in cache:
            ws, shift = self.window_size, self.shift_size
            img = torch.zeros((1, hp, wp, 1), device=device)
            cuts = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
            for i, (hs, wsl) in enumerate((hs, wsl) for hs in cuts for wsl in cuts):
                img[:, hs, wsl, :] = i
            windows = self.window_partition(img).view(-1, ws * ws)
            diff = windows.unsqueeze(1) - windows.unsqueeze(2)
            cache[key] = torch.zeros_like(diff).masked_fill(diff != 0, -100.0)
        return cache[key]


def _rows(x: Tensor, index: Tensor) -> Tensor:
    """``x[:, index]`` for x (B, L, C) and index (M,): (B, M, C), as one ``embedding`` (a row gather,
    faster on the CPU than ``index_select`` along the middle dimension; differentiable in x)."""
    b, length, c = x.shape
    if b > 1:
        index = index + torch.arange(b, device=index.device)[:, None] * length
    return F.embedding(index, x.reshape(b * length, c)).view(b, -1, c)


def swap_modules(root: torch.nn.Module, deform_attn: Optional[str] = None, window_attn: Optional[str] = None):
    """Turn the deformable / window attention modules under ``root`` into the form named
    (``'mmcv'`` / ``'mmdet'``: the original class; ``'gather'`` / ``'sdpa'``: the fast one)."""
    if deform_attn is not None and deform_attn not in DEFORM_ATTN_IMPLS:
        raise ValueError(f'deform_attn must be one of {DEFORM_ATTN_IMPLS}, got {deform_attn!r}')
    if window_attn is not None and window_attn not in WINDOW_ATTN_IMPLS:
        raise ValueError(f'window_attn must be one of {WINDOW_ATTN_IMPLS}, got {window_attn!r}')
    for module in root.modules():
        if deform_attn is not None and isinstance(module, MultiScaleDeformableAttention):
            module.__class__ = GatherMSDeformAttn if deform_attn == 'gather' else MultiScaleDeformableAttention
        elif window_attn is not None and isinstance(module, WindowMSA):
            module.__class__ = SDPAWindowMSA if window_attn == 'sdpa' else WindowMSA
        elif window_attn is not None and isinstance(module, ShiftWindowMSA):
            module.__class__ = SDPAShiftWindowMSA if window_attn == 'sdpa' else ShiftWindowMSA
    return root
