from .prompt_fused_swin import PixelWordAttention, PromptFusedSwin

__all__ = ['PixelWordAttention', 'PromptFusedSwin']
