from .clicks import click_map, first_click, largest_error_click, simulate_clicks
from .formatting import PackOmniInputs
from .geometric import OmniRandomFlip, OmniResize, flip_text
from .loading import LoadFewShotSegMap, LoadOmniAnnotations, LoadVisualPrompts
from .prompts import SynthesizePromptMaps, box_prompt, click_prompts, jittered_box_prompt, scribble_prompt

__all__ = [
    'click_map',
    'first_click',
    'largest_error_click',
    'simulate_clicks',
    'jittered_box_prompt',
    'click_prompts',
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
