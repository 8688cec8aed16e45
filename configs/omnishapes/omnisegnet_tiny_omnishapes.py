# The tiny OmniSegNet on the synthetic OmniShapes set: trains on a CPU in minutes.
#   python tools/dataset_converters/make_omnishapes.py data/omnishapes
#   python tools/train.py configs/omnishapes/omnisegnet_tiny_omnishapes.py
_base_ = [
    '../_base_/models/omnisegnet_tiny.py',
    '../_base_/datasets/omnishapes.py',
    '../_base_/default_runtime.py',
]
max_iters = 600
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='OmniValLoop')  # ValLoop that goes on past an all-skipped batch
test_cfg = dict(type='OmniTestLoop')
optim_wrapper = dict(
    type='GuardedOptimWrapper',
    on_nonfinite='error',  # 'skip' drops a NaN/inf step and counts it
    # foreach: the multi-tensor update and norm, which PyTorch takes by default on CUDA only; on the
    # CPU the same weights bit for bit (12 steps of the quickstart's config), the update and the
    # clipping in 22.7 ms instead of 29.6 (medians of 15 steps of that config, 2 threads).
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.01, foreach=True),
    clip_grad=dict(max_norm=1.0, norm_type=2, foreach=True),
)
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[int(max_iters * 0.8)], gamma=0.1)
]
train_dataloader = dict(sampler=dict(type='InfiniteSampler', shuffle=True))
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters),
    logger=dict(type='LoggerHook', interval=20),
)
log_processor = dict(by_epoch=False)
