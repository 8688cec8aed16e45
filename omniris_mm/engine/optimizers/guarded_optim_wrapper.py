"""Optimizer wrappers that refuse to step on a NaN or inf loss.

mmengine's ``OptimWrapper`` steps on whatever loss it is given: one NaN loss writes
NaN into every weight and the run goes on, saving useless checkpoints. These wrappers
check the loss first (agreeing across ranks, so that DDP never deadlocks) and either
stop the run with a message naming the iteration and the batch's samples, or skip the
step and count it.
"""

import logging
from typing import Dict, Optional

import torch
import torch.distributed as dist
from mmdet.registry import OPTIM_WRAPPERS
from mmengine.dist import is_distributed
from mmengine.logging import MessageHub, print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from torch import Tensor

from ...structures import BATCH_INFO_KEY


class NonFiniteLossGuard:
    """Mixin for an mmengine optimizer wrapper.

    Args:
        on_nonfinite (str): ``'error'`` (default) raises ``FloatingPointError``;
            ``'skip'`` drops the step (gradients zeroed, weights untouched), logs a
            warning and counts it in the message hub as ``train/nonfinite_skips``.
        max_skips (int, optional): With ``'skip'``, raise once more steps than this
            have been skipped in the run (a run that keeps producing NaN is broken).
    """

    def _init_guard(self, on_nonfinite: str, max_skips: Optional[int]) -> None:
        if on_nonfinite not in ('error', 'skip'):
            raise ValueError(f"on_nonfinite must be 'error' or 'skip', got {on_nonfinite!r}")
        self.on_nonfinite = on_nonfinite
        self.max_skips = max_skips
        self.skipped = 0

    def update_params(self, loss: Tensor, step_kwargs: Optional[Dict] = None, zero_kwargs: Optional[Dict] = None):
        bad = torch.tensor(float(not torch.isfinite(loss.detach()).all()), device=loss.device)
        if is_distributed():
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)  # every rank skips, or none does
        if not bad:
            return super().update_params(loss, step_kwargs, zero_kwargs)
        hub = MessageHub.get_current_instance()
        iteration = hub.get_info('iter')
        where = 'iteration ' + (str(iteration + 1) if iteration is not None else '?')
        ids = hub.get_info(BATCH_INFO_KEY) or []
        message = f'non-finite loss ({float(loss.detach())}) at {where}; batch on this rank: ' + (
            '; '.join(map(str, ids)) if ids else 'unknown (the model records no sample ids)'
        )
        if self.on_nonfinite == 'error':
            raise FloatingPointError(message + ". To skip such steps set optim_wrapper.on_nonfinite='skip'.")
        self.skipped += 1
        self.zero_grad(**(zero_kwargs or {}))
        hub.update_scalar('train/nonfinite_skips', self.skipped)
        print_log(f'{message}: step skipped ({self.skipped} so far)', logger='current', level=logging.WARNING)
        if self.max_skips is not None and self.skipped > self.max_skips:
            raise FloatingPointError(f'{self.skipped} steps skipped for non-finite losses (max_skips={self.max_skips})')


@OPTIM_WRAPPERS.register_module()
class GuardedOptimWrapper(NonFiniteLossGuard, OptimWrapper):
    """mmengine's ``OptimWrapper`` with the non-finite loss guard (see ``NonFiniteLossGuard``)."""

    def __init__(self, *args, on_nonfinite: str = 'error', max_skips: Optional[int] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_guard(on_nonfinite, max_skips)


@OPTIM_WRAPPERS.register_module()
class GuardedAmpOptimWrapper(NonFiniteLossGuard, AmpOptimWrapper):
    """mmengine's ``AmpOptimWrapper`` with the non-finite loss guard (``tools/train.py --amp``)."""

    def __init__(self, *args, on_nonfinite: str = 'error', max_skips: Optional[int] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._init_guard(on_nonfinite, max_skips)
