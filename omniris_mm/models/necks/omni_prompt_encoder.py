from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.ops import MultiScaleDeformableAttention
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

from ..layers import LayerNorm2d, SelfAttentionFFN
from ..layers.fast_attention import swap_modules
from ..layers.pooling import max_pool_to


class PromptGeneratorLayer(BaseModule):
    """Multi-scale deformable cross-attention to the prompted reference features,
    then self-attention among the prompt queries, then an FFN; post-norm."""

    def __init__(
        self, embed_dims: int, num_heads: int, num_levels: int, num_points: int, ffn_dims: int, dropout: float
    ):
        super().__init__()
        self.cross_attn = MultiScaleDeformableAttention(
            embed_dims, num_heads, num_levels, num_points, dropout=dropout, batch_first=True
        )
        self.norm1 = nn.LayerNorm(embed_dims)
        self.self_attn_ffn = SelfAttentionFFN(embed_dims, num_heads, ffn_dims, dropout)

    def forward(self, query, query_pos, value, value_mask, reference_points, spatial_shapes, level_start_index):
        # mmcv's deformable attention adds its input back (identity) itself.
        query = self.norm1(
            self.cross_attn(
                query,
                value=value,
                query_pos=query_pos,
                key_padding_mask=value_mask,
                reference_points=reference_points,
                spatial_shapes=spatial_shapes,
                level_start_index=level_start_index,
            )
        )
        return self.self_attn_ffn(query, query_pos)


@MODELS.register_module()
class OmniPromptEncoder(BaseModule):
    """The prompt-embedding neck: turns a reference image's features and its prompt
    map (mask, box or scribble) into visual tokens in the text-token space.

    1. Prompt Embedding Module: two 2x2/2 convs (1->4->16 channels, LayerNorm2d
       + ReLU) and a 1x1 conv embed the prompt map at stride 4; 2x2/2 convs
       (+ LayerNorm2d, + ReLU with ``downscale_relu``) carry it to strides 8, 16
       and 32. Each level is added to the reference feature of that level (1x1
       conv + GroupNorm). Positions outside the prompt region of the level are
       masked out of the attention.
    2. Prompt generator: ``num_queries`` learnable queries on a fixed
       ``query_grid`` of reference points attend to those maps through
       ``num_layers`` layers of mmcv's ``MultiScaleDeformableAttention``,
       self-attention and an FFN; a linear layer + LayerNorm map them to
       ``out_dims`` (the text encoder's width): the visual tokens.

    Args:
        in_channels (Sequence[int]): Reference feature channels, strides 4 to 32.
        embed_dims (int): Width of the prompt generator.
        out_dims (int): Width of the visual tokens (the text token width).
        num_queries (int): Visual tokens per prompt.
        query_grid (tuple): ``(rows, cols)`` of the fixed reference points.
        num_layers, num_heads, num_points, ffn_dims, dropout: generator layers.
        prompt_region (str): How the prompt region of a level is taken from the
            prompt map: ``'nearest'`` (the release) nearest-neighbour resizing to
            the level's size; ``'max_pool'`` adaptive max pooling, which keeps a
            region thinner than the level's stride.
        downscale_relu (bool): End the stride-8/16/32 blocks with a ReLU after their
            LayerNorm2d, as the stride-4 embedding does (the release: True).
        norm_eps (float): Epsilon of the five LayerNorm2d (the release: 1e-6).
        deform_attn (str): The generator's deformable attention on the CPU, ``'mmcv'``
            or ``'gather'`` (:class:`GatherMSDeformAttn`; equal to float rounding).

    Forward: ``ref_feats`` (4 maps, (N, C_l, H_l, W_l)) and ``prompt_maps``
    (N, 1, H, W) -> visual tokens (N, num_queries, out_dims).
    """

    def __init__(
        self,
        in_channels: Sequence[int] = (128, 256, 512, 1024),
        embed_dims: int = 256,
        out_dims: int = 768,
        num_queries: int = 20,
        query_grid: Tuple[int, int] = (4, 5),
        num_layers: int = 3,
        num_heads: int = 8,
        num_points: int = 4,
        ffn_dims: int = 2048,
        dropout: float = 0.0,
        prompt_region: str = 'max_pool',
        downscale_relu: bool = False,
        norm_eps: float = 1e-5,
        deform_attn: str = 'mmcv',
        init_cfg=None,
    ):
        super().__init__(init_cfg=init_cfg)
        if query_grid[0] * query_grid[1] != num_queries:
            raise ValueError(f'query_grid {query_grid} must hold num_queries={num_queries} points')
        if prompt_region not in ('nearest', 'max_pool'):
            raise ValueError(f"prompt_region must be 'nearest' or 'max_pool', got {prompt_region!r}")
        self.prompt_region = prompt_region
        num_levels = len(in_channels)
        self.prompt_embed = nn.Sequential(
            nn.Conv2d(1, 4, 2, 2),
            LayerNorm2d(4, eps=norm_eps),
            nn.ReLU(inplace=True),
            nn.Conv2d(4, 16, 2, 2),
            LayerNorm2d(16, eps=norm_eps),
            nn.ReLU(inplace=True),
            nn.Conv2d(16, embed_dims, 1),
        )
        self.prompt_downscale = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(embed_dims, embed_dims, 2, 2),
                LayerNorm2d(embed_dims, eps=norm_eps),
                *([nn.ReLU(inplace=True)] if downscale_relu else []),
            )
            for _ in range(num_levels - 1)
        )
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, embed_dims, 1), nn.GroupNorm(min(32, embed_dims), embed_dims))
            for c in in_channels
        )
        self.query_feat = nn.Embedding(num_queries, embed_dims)
        self.query_pos = nn.Embedding(num_queries, embed_dims)
        rows, cols = query_grid
        ys, xs = torch.meshgrid((torch.arange(rows) + 0.5) / rows, (torch.arange(cols) + 0.5) / cols, indexing='ij')
        self.register_buffer('reference_points', torch.stack([xs, ys], -1).view(num_queries, 2), persistent=False)
        self.layers = nn.ModuleList(
            PromptGeneratorLayer(embed_dims, num_heads, num_levels, num_points, ffn_dims, dropout)
            for _ in range(num_layers)
        )
        swap_modules(self.layers, deform_attn=deform_attn)
        self.norm = nn.LayerNorm(embed_dims)
        self.out_proj = nn.Linear(embed_dims, out_dims)
        self.out_norm = nn.LayerNorm(out_dims)
        self.num_levels = num_levels

    def embed_prompt(self, prompt_maps: Tensor) -> List[Tensor]:
        """Prompt map (N, 1, H, W) -> one embedding per level, strides 4 to 32."""
        levels = [self.prompt_embed(prompt_maps)]
        for down in self.prompt_downscale:
            levels.append(down(levels[-1]))
        return levels

    def _region(self, prompt_maps: Tensor, size: Tuple[int, int]) -> Tensor:
        """Prompt maps (N, 1, H, W) -> the prompt region at ``size`` (N, h, w) bool."""
        if self.prompt_region == 'nearest':
            return F.interpolate(prompt_maps, size, mode='nearest')[:, 0] > 0
        return max_pool_to(prompt_maps, size)[:, 0] > 0

    def forward(self, ref_feats: List[Tensor], prompt_maps: Tensor) -> Tensor:
        prompt_maps = prompt_maps.float()
        values, masks = [], []
        for feat, proj, emb in zip(ref_feats, self.input_proj, self.embed_prompt(prompt_maps)):
            h, w = feat.shape[-2:]
            level = proj(feat) + emb[..., :h, :w]
            region = self._region(prompt_maps, (h, w))  # (N, h, w)
            values.append(level.flatten(2).transpose(1, 2))
            masks.append(~region.flatten(1))
        value = torch.cat(values, 1)
        value_mask = torch.cat(masks, 1)
        # The level sizes as a tensor of the maps' shapes (as mmdet's pixel decoder takes them), so that
        # an exported graph reads them from its input instead of holding the example's.
        spatial_shapes = torch.stack([torch._shape_as_tensor(f)[-2:] for f in ref_feats]).to(value.device)
        level_start_index = torch.cat([spatial_shapes.new_zeros(1), spatial_shapes.prod(1).cumsum(0)[:-1]])
        n = value.shape[0]
        query = self.query_feat.weight[None].expand(n, -1, -1)
        query_pos = self.query_pos.weight[None].expand(n, -1, -1)
        reference_points = self.reference_points[None, :, None].expand(n, -1, self.num_levels, -1)
        for layer in self.layers:
            query = layer(query, query_pos, value, value_mask, reference_points, spatial_shapes, level_start_index)
        return self.out_norm(self.out_proj(self.norm(query)))
