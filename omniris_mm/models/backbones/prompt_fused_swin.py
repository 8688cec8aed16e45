from typing import List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.backbones import SwinTransformer
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

from ..layers.fast_attention import swap_modules


def _instance_norm(x: Tensor) -> Tensor:
    """Normalise each channel over the pixels of its sample: x (B, N, C)."""
    return F.instance_norm(x.transpose(1, 2)).transpose(1, 2)


class PixelWordAttention(BaseModule):
    """LAVT-style pixel-word attention: every pixel attends to the prompt tokens
    (one head), the result is multiplied element-wise with a projection of the
    pixel features and projected again.

    Args:
        embed_dims (int): Channels of the visual features.
        prompt_dims (int): Channels of the prompt tokens.
        dropout (float): Dropout after the projections.
    """

    def __init__(self, embed_dims: int, prompt_dims: int, dropout: float = 0.0):
        super().__init__()
        self.vis_project = nn.Sequential(nn.Linear(embed_dims, embed_dims), nn.GELU(), nn.Dropout(dropout))
        self.query = nn.Linear(embed_dims, embed_dims)
        self.key = nn.Linear(prompt_dims, embed_dims)
        self.value = nn.Linear(prompt_dims, embed_dims)
        self.attn_out = nn.Linear(embed_dims, embed_dims)
        self.project_mm = nn.Sequential(nn.Linear(embed_dims, embed_dims), nn.GELU(), nn.Dropout(dropout))
        self.scale = embed_dims**-0.5

    def forward(self, x: Tensor, prompt_tokens: Tensor, prompt_mask: Tensor) -> Tensor:
        """x (B, N, C) pixels, prompt_tokens (B, L, D), prompt_mask (B, L) -> (B, N, C)."""
        valid = prompt_mask[:, None, :]
        query = _instance_norm(self.query(x))  # (B, N, C)
        key = self.key(prompt_tokens) * prompt_mask[..., None]  # (B, L, C)
        value = self.value(prompt_tokens) * prompt_mask[..., None]
        sim = torch.bmm(query, key.transpose(1, 2)) * self.scale  # (B, N, L)
        sim = sim.masked_fill(~valid, torch.finfo(sim.dtype).min)
        attended = _instance_norm(self.attn_out(torch.bmm(sim.softmax(-1), value)))  # (B, N, C)
        return self.project_mm(self.vis_project(x) * attended)


@MODELS.register_module()
class PromptFusedSwin(SwinTransformer):
    """mmdet's Swin Transformer with the prompt tokens fused after every stage.

    After the blocks of stage ``i`` (before its patch merging), a
    :class:`PixelWordAttention` computes the fusion output ``f_i`` from the prompt
    tokens; stages in ``gated_stages`` add it to the features through a tanh gate
    that starts closed (so the pre-trained Swin is untouched at the first step),
    the others add it directly. The sum feeds the next stage. Called without
    prompt tokens (a reference image), it is the plain Swin.

    Args:
        prompt_dims (int): Channels of the prompt tokens.
        gated_stages (Sequence[int]): Stages whose fusion is gated (published: 0-2).
        fusion_dropout (float): Dropout inside the fusion modules.
        stage_out (str): What stage ``i`` outputs (through its LayerNorm):
            ``'fused'`` (ours) the features after the fusion, ``x + gate(f_i) * f_i``,
            the same map that feeds the next stage; ``'fusion'`` (the release, as
            LAVT) the fusion output ``f_i`` alone, the gated sum then only feeding
            the next stage.
        gate_zero_init (str): Which projections of each tanh gate start at zero:
            ``'output'`` (ours) the second one, so the gate is closed and still gets
            gradients; ``'both'`` (the release) both, which closes the gate for good:
            with both projections zero neither gets a gradient, and only
            ``stage_out='fusion'`` lets the prompts reach the outputs.
        window_attn (str): ``'mmdet'`` mmdet's window attention; ``'sdpa'`` the same
            through ``scaled_dot_product_attention``, projecting only the real tokens, not
            the padding to a multiple of the window (:class:`SDPAShiftWindowMSA`, equal to
            float rounding, faster).
        checkpoint_stages (Sequence[int], optional): The stages whose blocks run with
            activation checkpointing in training (mmdet's ``SwinBlock.with_cp``: the block's
            activations are not kept but recomputed in the backward pass). None: every
            stage if ``with_cp``, none otherwise. The early stages hold the most activation
            memory per block (stage 0 at stride 4 four times stage 2's) for the least
            recomputation (2 of Swin-B's 24 blocks each): ``(0, 1)`` is the cheap saving.
        **kwargs: ``SwinTransformer`` arguments.
    """

    def __init__(
        self,
        prompt_dims: int = 768,
        gated_stages: Sequence[int] = (0, 1, 2),
        fusion_dropout: float = 0.0,
        stage_out: str = 'fused',
        gate_zero_init: str = 'output',
        window_attn: str = 'mmdet',
        checkpoint_stages: Optional[Sequence[int]] = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        swap_modules(self, window_attn=window_attn)
        if checkpoint_stages is not None:
            self.set_checkpoint_stages(checkpoint_stages)
        if stage_out not in ('fused', 'fusion'):
            raise ValueError(f"stage_out must be 'fused' or 'fusion', got {stage_out!r}")
        if gate_zero_init not in ('output', 'both'):
            raise ValueError(f"gate_zero_init must be 'output' or 'both', got {gate_zero_init!r}")
        self.stage_out = stage_out
        self.gate_zero_init = gate_zero_init
        self.gated_stages = tuple(gated_stages)
        self.fusions = nn.ModuleList(PixelWordAttention(c, prompt_dims, fusion_dropout) for c in self.num_features)
        self.fusion_gates = nn.ModuleDict(
            {
                str(i): nn.Sequential(
                    nn.Linear(self.num_features[i], self.num_features[i], bias=False),
                    nn.ReLU(),
                    nn.Linear(self.num_features[i], self.num_features[i], bias=False),
                    nn.Tanh(),
                )
                for i in self.gated_stages
            }
        )

    def set_checkpoint_stages(self, stages: Sequence[int]):
        """Activation checkpointing on for the blocks of ``stages``, off for the others (mmdet's
        ``SwinBlock`` reads ``with_cp`` in each forward, so this may change between steps)."""
        unknown = sorted(set(stages) - set(range(len(self.stages))))
        if unknown:
            raise ValueError(f'checkpoint_stages {unknown} are not stages of this Swin (0-{len(self.stages) - 1})')
        for i, stage in enumerate(self.stages):
            for block in stage.blocks:
                block.with_cp = i in stages

    def init_weights(self):
        super().init_weights()
        for gate in self.fusion_gates.values():
            nn.init.zeros_(gate[2].weight)
            if self.gate_zero_init == 'both':
                nn.init.zeros_(gate[0].weight)

    def forward(
        self, x: Tensor, prompt_tokens: Optional[Tensor] = None, prompt_mask: Optional[Tensor] = None
    ) -> List[Tensor]:
        """x (B, 3, H, W) -> features at strides 4, 8, 16, 32 (``out_indices``)."""
        x, hw_shape = self.patch_embed(x)
        if self.use_abs_pos_embed:
            x = x + self.absolute_pos_embed
        x = self.drop_after_pos(x)
        outs = []
        for i, stage in enumerate(self.stages):
            for block in stage.blocks:
                x = block(x, hw_shape)
            out = x
            if prompt_tokens is not None:
                fusion = self.fusions[i](x, prompt_tokens, prompt_mask)
                gate = self.fusion_gates[str(i)](fusion) if str(i) in self.fusion_gates else 1.0
                x = x + gate * fusion
                out = fusion if self.stage_out == 'fusion' else x
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(out)
                outs.append(out.view(-1, *hw_shape, self.num_features[i]).permute(0, 3, 1, 2).contiguous())
            if stage.downsample:
                x, hw_shape = stage.downsample(x, hw_shape)
        return outs
