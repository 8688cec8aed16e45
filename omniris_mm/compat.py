"""Fixes for the pinned stack (torch 2.13, mmengine 0.10.7). Each one has a test that fails without it.
(Checkpoints are read by one loader with ``weights_only=True``: :mod:`omniris_mm.engine.checkpoint`.)

Set ``OMNIRIS_MM_DISABLE_COMPAT=1`` to leave the stack untouched (the tests use it to
show each failure).

1. ``cpu_distributed``: mmengine's ``pytorch`` launcher calls
   ``torch.cuda.set_device`` and wraps the model with ``device_ids``; both fail
   without CUDA. On a machine without CUDA the launcher uses gloo and skips the
   device, and ``MMDistributedDataParallel`` drops ``device_ids`` for CPU modules,
   so ``tools/dist_train.sh CONFIG 2`` trains on CPUs. The gloo group is closed at exit.
2. ``cpu_amp``: mmengine's ``AmpOptimWrapper`` asserts a GPU (or NPU, MLU, MUSA), so
   ``tools/train.py --amp`` stops on a CPU although mmengine's own ``autocast`` runs
   on one in bfloat16. On a machine without those devices the wrapper is built for
   bfloat16 (the only dtype of mmengine's CPU autocast) with the loss scaler disabled
   (bfloat16 has float32's exponent range: nothing to rescale).
"""

import atexit
import os

import torch

_applied = []


def _close_process_group() -> None:
    import torch.distributed as torch_dist

    if torch_dist.is_initialized():
        from datetime import timedelta

        try:  # gloo's monitored barrier: a rank that never arrives (it crashed) raises instead of hanging
            torch_dist.monitored_barrier(timeout=timedelta(seconds=60))
        except RuntimeError:
            pass
        finally:
            torch_dist.destroy_process_group()


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
        # ("terminate called without an active exception"): close it first, all ranks
        # together (a rank closing its connections while another still uses them aborts too).
        atexit.register(_close_process_group)

    dist_utils._init_dist_pytorch = init_dist_pytorch

    stock_ddp_init = MMDistributedDataParallel.__init__

    def ddp_init(self, module, detect_anomalous_params=False, **kwargs):
        if all(not p.is_cuda for p in module.parameters()):
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        stock_ddp_init(self, module, detect_anomalous_params=detect_anomalous_params, **kwargs)

    MMDistributedDataParallel.__init__ = ddp_init


def _cpu_amp() -> None:
    import mmengine.optim.optimizer.amp_optimizer_wrapper as amp

    stock_init = amp.AmpOptimWrapper.__init__

    def on_accelerator():
        return amp.is_cuda_available() or amp.is_npu_available() or amp.is_mlu_available() or amp.is_musa_available()

    def init(self, loss_scale='dynamic', dtype=None, use_fsdp=False, **kwargs):
        if on_accelerator():
            return stock_init(self, loss_scale=loss_scale, dtype=dtype, use_fsdp=use_fsdp, **kwargs)
        if dtype not in (None, 'bfloat16', torch.bfloat16):
            raise ValueError(f'AMP on a CPU runs in bfloat16 (torch.autocast on CPU); got dtype={dtype!r}')
        cuda_check = amp.is_cuda_available
        amp.is_cuda_available = lambda: True  # only for the device assertion
        try:
            stock_init(self, loss_scale=loss_scale, dtype=torch.bfloat16, use_fsdp=use_fsdp, **kwargs)
        finally:
            amp.is_cuda_available = cuda_check
        self.loss_scaler = torch.amp.GradScaler('cpu', enabled=False)

    amp.AmpOptimWrapper.__init__ = init


FIXES = dict(cpu_distributed=_cpu_distributed, cpu_amp=_cpu_amp)


def apply() -> list:
    """Apply every fix once. Returns the names applied."""
    if os.environ.get('OMNIRIS_MM_DISABLE_COMPAT', '0') not in ('', '0'):
        return []
    for name, fix in FIXES.items():
        if name not in _applied:
            fix()
            _applied.append(name)
    return list(_applied)
