from .norms import LayerNorm2d
from .self_attention_ffn import SelfAttentionFFN

__all__ = ['LayerNorm2d', 'SelfAttentionFFN']
