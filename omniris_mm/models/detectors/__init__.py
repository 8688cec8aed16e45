from .omnisegnet import PROMPT_TYPES, OmniSegNet

__all__ = ['OmniSegNet', 'PROMPT_TYPES']
