# OmniSegNet, Swin-B + BERT-base at 480 x 480. Stage 3 of 3, omni-modal joint training on OmniRef
# (text:visual:omni = 7:2:1); starts from stage 2's last checkpoint
# (configs/omnisegnet/omnisegnet_swinb_stage2_visual-tuning.py, which starts from stage 1).
#   tools/dist_train.sh configs/omnisegnet_swinb.py 8
_base_ = [
    './_base_/models/omnisegnet_swinb.py',
    './_base_/datasets/omniref_joint.py',
    './_base_/schedules/omnisegnet_37k.py',
    './_base_/default_runtime.py',
]
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
load_from = 'work_dirs/omnisegnet_swinb_stage2_visual-tuning/iter_37600.pth'
