from .checkpoint import verify_hash_prefix
from .optimizers import GuardedAmpOptimWrapper, GuardedOptimWrapper

__all__ = ['GuardedOptimWrapper', 'GuardedAmpOptimWrapper', 'verify_hash_prefix']
