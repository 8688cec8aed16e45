"""Fixes for the pinned stack (torch 2.13, mmengine 0.10.7). Each one has a test that fails without it.
(Checkpoints are read by one loader with ``weights_only=True``: :mod:`omniris_mm.engine.checkpoint`.)

Set ``OMNIRIS_MM_DISABLE_COMPAT=1`` to leave the stack untouched (the tests use it to
show each failure).

1. ``cpu_distributed``: mmengine's ``pytorch`` launcher calls
   ``torch.cuda.set_device`` and wraps the model with ``device_ids``; both fail
   without CUDA. On a machine without CUDA the launcher uses gloo and skips the
   device, and ``MMDistributedDataParallel`` drops ``device_ids`` for CPU modules,
   so ``tools/dist_train.sh CONFIG 2`` trains on CPUs. The gloo group is closed at exit.
"""

import atexit
import os

import torch

_applied = []


def _cpu_distributed() -> None:
    import mmengine.dist.utils as dist_utils
    import torch.distributed as torch_dist
    from mmengine.model import MMDistributedDataParallel

    stock_init = dist_utils._init_dist_pytorch

    def init_dist_pytorch(backend='nccl', init_backend='torch', **kwargs):
        if torch.cuda.is_available():
            return stock_init(backend, init_backend=init_backend, **kwargs)
        torch_dist.init_process_group(backend='gloo' if backend == 'nccl' else backend, **kwargs)
        # A gloo group still alive at interpreter exit can abort the process
        # ("terminate called without an active exception"): close it first.
        atexit.register(lambda: torch_dist.is_initialized() and torch_dist.destroy_process_group())

    dist_utils._init_dist_pytorch = init_dist_pytorch

    stock_ddp_init = MMDistributedDataParallel.__init__

    def ddp_init(self, module, detect_anomalous_params=False, **kwargs):
        if all(not p.is_cuda for p in module.parameters()):
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        stock_ddp_init(self, module, detect_anomalous_params=detect_anomalous_params, **kwargs)

    MMDistributedDataParallel.__init__ = ddp_init


FIXES = dict(cpu_distributed=_cpu_distributed)


def apply() -> list:
    """Apply every fix once. Returns the names applied."""
    if os.environ.get('OMNIRIS_MM_DISABLE_COMPAT', '0') not in ('', '0'):
        return []
    for name, fix in FIXES.items():
        if name not in _applied:
            fix()
            _applied.append(name)
    return list(_applied)
