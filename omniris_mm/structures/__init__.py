"""The bottom of the package: the vocabulary every other part shares. Imports nothing of the package."""

from .vocabulary import (
    BATCH_INFO_KEY,
    IGNORE_INDEX,
    NEGATIVE_EXEMPLAR_TYPES,
    NEGATIVE_PROMPT_TYPES,
    SKIPPED_KEY,
    TARGET_PROMPT_TYPES,
    VISUAL_PROMPT_TYPES,
)

__all__ = [
    'BATCH_INFO_KEY',
    'IGNORE_INDEX',
    'NEGATIVE_EXEMPLAR_TYPES',
    'NEGATIVE_PROMPT_TYPES',
    'SKIPPED_KEY',
    'TARGET_PROMPT_TYPES',
    'VISUAL_PROMPT_TYPES',
]
