from .guarded_optim_wrapper import BATCH_INFO_KEY, GuardedAmpOptimWrapper, GuardedOptimWrapper

__all__ = ['BATCH_INFO_KEY', 'GuardedOptimWrapper', 'GuardedAmpOptimWrapper']
