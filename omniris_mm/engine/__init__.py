from .checkpoint import (
    SAFE_GLOBALS,
    TRUST_ENV,
    UntrustedCheckpointError,
    load_checkpoint_file,
    unsafe_globals,
    verify_hash_prefix,
)
from .interactive import InteractiveTestLoop
from .loops import OmniTestLoop, OmniValLoop
from .optimizers import GuardedAmpOptimWrapper, GuardedOptimWrapper

__all__ = [
    'GuardedOptimWrapper',
    'GuardedAmpOptimWrapper',
    'InteractiveTestLoop',
    'OmniTestLoop',
    'OmniValLoop',
    'SAFE_GLOBALS',
    'TRUST_ENV',
    'UntrustedCheckpointError',
    'load_checkpoint_file',
    'unsafe_globals',
    'verify_hash_prefix',
]
