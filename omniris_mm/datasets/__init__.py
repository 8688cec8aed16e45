from .base_omni import BaseOmniDataset, OmniDatasetMixin
from .coco_parts import CocoPartDataset
from .coco_target import CocoTargetPromptDataset
from .coco_visual import CocoVisualPromptDataset
from .collate import omni_collate
from .grefcoco import GRefCocoDataset
from .omniref import OmniRefDataset
from .pascal5i import Pascal5iDataset
from .refcoco import RefCocoOmniDataset
from .refcocom import RefCocoMDataset
from .reference_db import ReferenceDatabase
from .samplers import RatioMultiSourceSampler
from .transforms import *  # noqa: F401,F403
from .utils import SKIPPED_KEY, OmniDataError

__all__ = [
    'BaseOmniDataset',
    'OmniDatasetMixin',
    'CocoPartDataset',
    'CocoTargetPromptDataset',
    'CocoVisualPromptDataset',
    'GRefCocoDataset',
    'OmniRefDataset',
    'Pascal5iDataset',
    'RatioMultiSourceSampler',
    'ReferenceDatabase',
    'RefCocoOmniDataset',
    'RefCocoMDataset',
    'OmniDataError',
    'SKIPPED_KEY',
    'omni_collate',
]
