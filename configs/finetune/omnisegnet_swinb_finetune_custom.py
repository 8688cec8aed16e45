# Fine-tuning the full model (Swin-B + BERT-base, 480 x 480) on your own data: from the published
# checkpoint converted for this config, or a checkpoint of ours, with only the data, the prompt
# sources and the schedule changed (docs/finetune_custom_data.md):
#   python tools/model_converters/omnisegnet_official_to_mmdet.py model_final.pth \
#       checkpoints/omnisegnet_release_for_finetune.pth --config configs/finetune/omnisegnet_swinb_finetune_custom.py
#   tools/dist_train.sh configs/finetune/omnisegnet_swinb_finetune_custom.py 8
_base_ = ['../omnisegnet_swinb.py']

data_root = 'data/my_omniref/'
train_splits = ('text-train', 'visual-train')
test_splits = ('text-test', 'visual-test')
train_pipeline = {{_base_.train_pipeline}}
test_pipeline = {{_base_.test_pipeline}}


def _splits(splits, pipeline, **kwargs):
    return dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(
                type='OmniRefDataset',
                data_root=data_root,
                ann_file='OmniRef.json',
                split=split,
                data_prefix=dict(img_path='images/'),
                pipeline=pipeline,
                **kwargs,
            )
            for split in splits
        ],
    )


train_dataloader = dict(
    sampler=dict(source_ratio=[1, 1]), dataset=_splits(train_splits, train_pipeline, on_invalid='skip')
)
val_dataloader = dict(dataset=_splits(test_splits, test_pipeline, test_mode=True))
test_dataloader = val_dataloader
del _splits

max_iters = 5000
load_from = 'checkpoints/omnisegnet_release_for_finetune.pth'
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[4000], gamma=0.1)]
default_hooks = dict(checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
