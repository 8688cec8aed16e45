# OmniSegNet, Swin-B + BERT-base at 480 x 480, omni-modal joint training on OmniRef.
#   tools/dist_train.sh configs/omnisegnet_swinb.py 8
_base_ = [
    './_base_/models/omnisegnet_swinb.py',
    './_base_/datasets/omniref_joint.py',
    './_base_/schedules/omnisegnet_37k.py',
    './_base_/default_runtime.py',
]
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
