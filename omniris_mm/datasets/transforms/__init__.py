from .formatting import PackOmniInputs
from .geometric import OmniRandomFlip, OmniResize, flip_text
from .loading import LoadFewShotSegMap, LoadOmniAnnotations, LoadVisualPrompts
from .prompts import SynthesizePromptMaps, box_prompt, scribble_prompt

__all__ = [
    'PackOmniInputs',
    'OmniRandomFlip',
    'OmniResize',
    'flip_text',
    'LoadFewShotSegMap',
    'LoadOmniAnnotations',
    'LoadVisualPrompts',
    'SynthesizePromptMaps',
    'box_prompt',
    'scribble_prompt',
]
