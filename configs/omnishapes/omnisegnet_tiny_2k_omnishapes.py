# The quickstart's training job (tools/quickstart.sh): the tiny OmniSegNet on OmniShapes for 2,000
# iterations of 8 samples, text : visual : omni = 2 : 2 : 1 in every batch, poly decay. About
# 10 minutes on 2 CPU cores; evaluated on the three test splits by tools/test.py afterwards.
#   python tools/train.py configs/omnishapes/omnisegnet_tiny_2k_omnishapes.py
_base_ = ['./omnisegnet_tiny_omnishapes.py']
max_iters = 2000
# Evaluated once, by tools/test.py after training (the quickstart does so): mmengine's loop validates at
# its last iteration whatever val_interval says, so val_begin is past it.
train_cfg = dict(max_iters=max_iters, val_interval=max_iters + 1, val_begin=max_iters + 1)
# Batches loaded in the training process: on the 2-core machine a loader worker takes a core from the
# step (measured, 100 iterations of the _all config: 0.30 s per iteration without a worker, 0.35-0.37 s
# with 1 or 2).
train_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    sampler=dict(_delete_=True, type='RatioMultiSourceSampler', batch_size=8, source_ratio=[2, 2, 1]),
)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)]
# A fixed seed; the figures still swing between runs and seeds (seeds 0, 1, 2: all-split gIoU 82.4, 79.2, 71.3;
# see the README), so compare models over several seeds (.dev_scripts/sweep_switches.py).
randomness = dict(seed=0)
default_hooks = dict(checkpoint=dict(interval=max_iters), logger=dict(interval=50))
