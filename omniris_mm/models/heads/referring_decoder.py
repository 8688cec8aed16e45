from typing import Optional

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from ..layers import SelfAttentionFFN


class ReferringDecoderLayer(BaseModule):
    """One layer of the referring decoder (ReLA style), post-norm:

    masked cross-attention of the region queries to the image features ->
    (when prompt tokens are given: the first layer) cross-attention to the prompt
    tokens -> self-attention -> FFN.

    The prompt attention comes in two forms (``prompt_attn_mode``):

    - ``'replace'`` (ours): a post-norm residual sublayer like the others,
      ``q <- LN(q + MHA(q + query_pos, P, P))``; its output projection starts at
      zero unless ``zero_init_prompt_attn=False``.
    - ``'gated'`` (the release, as ReLA): a gated residual on top of the query,
      ``q <- q + rla_weight * sigmoid(lang_weight) * LN(q + MHA(q, P, P))``, with
      the learnt scalar ``lang_weight`` (starting at 0) and no query position.
    """

    def __init__(
        self,
        embed_dims: int,
        num_heads: int,
        ffn_dims: int,
        dropout: float = 0.0,
        with_prompt_attn: bool = False,
        zero_init_prompt_attn: bool = True,
        prompt_attn_mode: str = 'replace',
        rla_weight: float = 0.1,
    ):
        super().__init__()
        if prompt_attn_mode not in ('replace', 'gated'):
            raise ValueError(f"prompt_attn_mode must be 'replace' or 'gated', got {prompt_attn_mode!r}")
        self.zero_init_prompt_attn = zero_init_prompt_attn
        self.prompt_attn_mode = prompt_attn_mode
        self.rla_weight = rla_weight
        self.cross_attn = nn.MultiheadAttention(embed_dims, num_heads, dropout=dropout, batch_first=True)
        self.norm_cross = nn.LayerNorm(embed_dims)
        self.prompt_attn = None
        if with_prompt_attn:
            self.prompt_attn = nn.MultiheadAttention(embed_dims, num_heads, dropout=dropout, batch_first=True)
            self.norm_prompt = nn.LayerNorm(embed_dims)
            if prompt_attn_mode == 'gated':
                self.lang_weight = nn.Parameter(torch.zeros(()))
        self.self_attn_ffn = SelfAttentionFFN(embed_dims, num_heads, ffn_dims, dropout)
        self.dropout = nn.Dropout(dropout)

    def init_weights(self):
        super().init_weights()
        if self.prompt_attn is not None and self.prompt_attn_mode == 'gated':
            nn.init.zeros_(self.lang_weight)
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
        prompt_memory (B, L, C), prompt_padding (B, L) True = padding (None: attend to all)."""
        out = self.cross_attn(query + query_pos, memory + memory_pos, memory, attn_mask=attn_mask, need_weights=False)[
            0
        ]
        query = self.norm_cross(query + self.dropout(out))
        if self.prompt_attn is not None and prompt_memory is not None:
            gated = self.prompt_attn_mode == 'gated'
            out = self.prompt_attn(
                query if gated else query + query_pos,
                prompt_memory,
                prompt_memory,
                key_padding_mask=prompt_padding,
                need_weights=False,
            )[0]
            attended = self.norm_prompt(query + self.dropout(out))
            query = query + attended * self.lang_weight.sigmoid() * self.rla_weight if gated else attended
        return self.self_attn_ffn(query, query_pos)
