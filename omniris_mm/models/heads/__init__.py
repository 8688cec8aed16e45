from .adaptive_mask_head import AdaptiveMaskHead
from .referring_decoder import ReferringDecoderLayer

__all__ = ['AdaptiveMaskHead', 'ReferringDecoderLayer']
