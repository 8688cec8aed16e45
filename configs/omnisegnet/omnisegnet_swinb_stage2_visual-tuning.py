# Stage 2 of 3, visual instruction tuning: OmniRef visual samples plus visual prompts built from
# every COCO train2014 instance (a reference of the same category in another image), all three
# prompt types in one run, OmniRef:COCO = 1:1. Starts from stage 1's last checkpoint.
#   tools/dist_train.sh configs/omnisegnet/omnisegnet_swinb_stage2_visual-tuning.py 8
_base_ = ['../omnisegnet_swinb.py']

load_from = 'work_dirs/omnisegnet_swinb_stage1_vl-align/iter_37600.pth'
train_pipeline = {{_base_.train_pipeline}}
batch_size = 8
train_dataloader = dict(
    sampler=dict(_delete_=True, type='RatioMultiSourceSampler', batch_size=batch_size, source_ratio=[1, 1]),
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(
                type='OmniRefDataset',
                data_root='data/omniref/',
                split='visual-train',
                data_prefix=dict(img_path='images/train2014/'),
                pipeline=train_pipeline,
                on_invalid='skip',
            ),
            dict(
                type='CocoVisualPromptDataset',
                data_root='data/coco/',
                ann_file='annotations/instances_train2014.json',
                data_prefix=dict(img_path='train2014/'),
                pipeline=train_pipeline,
                on_invalid='skip',
            ),
        ],
    ),
)
# Validate on the OmniRef visual split.
val_dataloader = dict(dataset=dict(split='visual-test'))
test_dataloader = val_dataloader
