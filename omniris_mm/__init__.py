"""omniris_mm: Omni-Referring Image Segmentation for OpenMMLab.

Importing the package registers its modules into MMDetection's registries
(configs: ``custom_imports=dict(imports=['omniris_mm'], allow_failed_imports=False)``
with ``default_scope='mmdet'``) and applies the stack fixes of :mod:`omniris_mm.compat`.
"""

from . import compat
from .version import __version__

compat.apply()

from . import datasets, engine, evaluation, models, visualization  # noqa: E402,F401  (registers the modules)

__all__ = ['__version__', 'compat', 'datasets', 'engine', 'evaluation', 'models', 'visualization']
