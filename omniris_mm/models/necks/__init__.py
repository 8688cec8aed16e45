from .omni_prompt_encoder import OmniPromptEncoder

__all__ = ['OmniPromptEncoder']
