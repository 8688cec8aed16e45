from .optimizers import GuardedAmpOptimWrapper, GuardedOptimWrapper

__all__ = ['GuardedOptimWrapper', 'GuardedAmpOptimWrapper']
