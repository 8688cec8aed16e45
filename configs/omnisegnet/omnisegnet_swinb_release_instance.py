# Instance masks on top of the released weights: the published model (omnisegnet_swinb_release.py)
# with the instance branch added and trained alone, everything else frozen (and in eval mode), so
# the union mask and the "no target" answer stay the release's and each referred object also gets
# its own mask. Starts from the converted release checkpoint:
#   python tools/model_converters/omnisegnet_official_to_mmdet.py RELEASE.pth \
#       checkpoints/omnisegnet_release_converted.pth
#   tools/dist_train.sh configs/omnisegnet/omnisegnet_swinb_release_instance.py 8
# The branch is small (0.2 M parameters): a higher learning rate and a shorter schedule than the
# published one, no gradient clipping at 0.01 (it was set for the whole network).
_base_ = ['./omnisegnet_swinb_release.py']
model = dict(
    train_only=('head.objectness', 'head.instance_embed'),
    head=dict(instance_criterion=dict(_delete_=True, type='InstanceCriterion')),
)
load_from = 'checkpoints/omnisegnet_release_converted.pth'
max_iters = 10000
train_cfg = dict(max_iters=max_iters)
optim_wrapper = dict(optimizer=dict(lr=1e-4), clip_grad=dict(max_norm=1.0))
param_scheduler = [dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[8000], gamma=0.1)]
