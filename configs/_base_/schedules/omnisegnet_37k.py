# The published schedule: AdamW lr 1e-5, weight decay 0.05, gradient-norm clip 0.01,
# lr x0.1 at 26,320 and 33,840 of 37,600 iterations (8 GPUs x 8 images).
max_iters = 37600
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
val_cfg = dict(type='OmniValLoop')  # ValLoop that goes on past an all-skipped batch
test_cfg = dict(type='OmniTestLoop')
optim_wrapper = dict(
    type='GuardedOptimWrapper',
    on_nonfinite='error',  # 'skip' drops a NaN/inf step and counts it
    optimizer=dict(type='AdamW', lr=1e-5, weight_decay=0.05),
    clip_grad=dict(max_norm=0.01, norm_type=2),
)
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[26320, 33840], gamma=0.1)
]
auto_scale_lr = dict(enable=False, base_batch_size=64)
