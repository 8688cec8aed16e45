import torch.nn as nn
from torch import Tensor


class SelfAttentionFFN(nn.Module):
    """The tail shared by the prompt generator and the referring decoder layers:
    self-attention among the queries (positions added to queries and keys), then an
    FFN, each with a residual and a post-norm."""

    def __init__(self, embed_dims: int, num_heads: int, ffn_dims: int, dropout: float = 0.0):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(embed_dims, num_heads, dropout=dropout, batch_first=True)
        self.norm_self = nn.LayerNorm(embed_dims)
        self.ffn = nn.Sequential(
            nn.Linear(embed_dims, ffn_dims), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(ffn_dims, embed_dims)
        )
        self.norm_ffn = nn.LayerNorm(embed_dims)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: Tensor, query_pos: Tensor) -> Tensor:
        q = query + query_pos
        query = self.norm_self(query + self.dropout(self.self_attn(q, q, query, need_weights=False)[0]))
        return self.norm_ffn(query + self.dropout(self.ffn(query)))
