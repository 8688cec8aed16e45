from .formatting import PackOmniInputs
from .geometric import OmniRandomFlip, OmniResize, flip_text
from .loading import LoadOmniAnnotations, LoadVisualPrompts
from .prompts import SynthesizePromptMaps, box_prompt, scribble_prompt

__all__ = [
    'PackOmniInputs',
    'OmniRandomFlip',
    'OmniResize',
    'flip_text',
    'LoadOmniAnnotations',
    'LoadVisualPrompts',
    'SynthesizePromptMaps',
    'box_prompt',
    'scribble_prompt',
]
