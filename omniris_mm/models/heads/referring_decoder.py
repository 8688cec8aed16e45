from typing import Optional

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from ..layers import SelfAttentionFFN


class ReferringDecoderLayer(BaseModule):
    """One layer of the referring decoder (ReLA style), post-norm:

    masked cross-attention of the region queries to the image features ->
    (when prompt tokens are given: the first layer) cross-attention to the prompt
    tokens, whose output projection starts at zero (unless
    ``zero_init_prompt_attn=False``) -> self-attention -> FFN.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        ffn_dims: int,
        dropout: float = 0.0,
        with_prompt_attn: bool = False,
        zero_init_prompt_attn: bool = True,
    ):
        super().__init__()
        self.zero_init_prompt_attn = zero_init_prompt_attn
        self.cross_attn = nn.MultiheadAttention(embed_dims, num_heads, dropout=dropout, batch_first=True)
        self.norm_cross = nn.LayerNorm(embed_dims)
        self.prompt_attn = None
        if with_prompt_attn:
            self.prompt_attn = nn.MultiheadAttention(embed_dims, num_heads, dropout=dropout, batch_first=True)
            self.norm_prompt = nn.LayerNorm(embed_dims)
        self.self_attn_ffn = SelfAttentionFFN(embed_dims, num_heads, ffn_dims, dropout)
        self.dropout = nn.Dropout(dropout)

    def init_weights(self):
        super().init_weights()
        if self.prompt_attn is not None and self.zero_init_prompt_attn:
            nn.init.zeros_(self.prompt_attn.out_proj.weight)
            nn.init.zeros_(self.prompt_attn.out_proj.bias)

    def forward(
        self,
        query: Tensor,
        query_pos: Tensor,
        memory: Tensor,
        memory_pos: Tensor,
        attn_mask: Tensor,
        prompt_memory: Optional[Tensor] = None,
        prompt_padding: Optional[Tensor] = None,
    ) -> Tensor:
        """query (B, Q, C), memory (B, HW, C), attn_mask (B*heads, Q, HW) True = blocked,
        prompt_memory (B, L, C), prompt_padding (B, L) True = padding."""
        out = self.cross_attn(query + query_pos, memory + memory_pos, memory, attn_mask=attn_mask, need_weights=False)[
            0
        ]
        query = self.norm_cross(query + self.dropout(out))
        if self.prompt_attn is not None and prompt_memory is not None:
            out = self.prompt_attn(
                query + query_pos, prompt_memory, prompt_memory, key_padding_mask=prompt_padding, need_weights=False
            )[0]
            query = self.norm_prompt(query + self.dropout(out))
        return self.self_attn_ffn(query, query_pos)
