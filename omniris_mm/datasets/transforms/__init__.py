from .clicks import click_map, first_click, largest_error_click, simulate_clicks
from .formatting import PackOmniInputs
from .geometric import OmniRandomFlip, OmniResize, flip_text
from .image_cache import IMAGE_CACHE, DecodedImageCache, read_image
from .inference import LoadRequestPrompts, OmniInferencerLoader
from .loading import CachedLoadImageFromFile, LoadFewShotSegMap, LoadOmniAnnotations, LoadVisualPrompts
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
    'CachedLoadImageFromFile',
    'DecodedImageCache',
    'IMAGE_CACHE',
    'read_image',
    'LoadFewShotSegMap',
    'LoadOmniAnnotations',
    'LoadVisualPrompts',
    'LoadRequestPrompts',
    'OmniInferencerLoader',
    'SynthesizePromptMaps',
    'box_prompt',
    'scribble_prompt',
]
