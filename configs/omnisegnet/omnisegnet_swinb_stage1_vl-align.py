# Stage 1 of 3, vision-language alignment: referring data only (RefCOCO, RefCOCO+, RefCOCOg,
# gRefCOCO and OmniRef text), sampled in proportion to their sizes. Starts from ImageNet-22k
# Swin-B and BERT-base (the model's init_cfg); stage 2 starts from its last checkpoint.
#   tools/dist_train.sh configs/omnisegnet/omnisegnet_swinb_stage1_vl-align.py 8
# The paper gives no per-stage lengths: each stage uses the released 37.6k-iteration schedule.
_base_ = ['../omnisegnet_swinb.py']

load_from = None

coco_root = 'data/coco/'
train_pipeline = {{_base_.train_pipeline}}
refcoco = dict(
    type='RefCocoOmniDataset', data_root=coco_root, data_prefix=dict(img_path='train2014/'), split='train',
    pipeline=train_pipeline)  # yapf: disable
train_dataloader = dict(
    sampler=dict(_delete_=True, type='InfiniteSampler', shuffle=True),
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(refcoco, ann_file='refcoco/instances.json', split_file='refcoco/refs(unc).p'),
            dict(refcoco, ann_file='refcoco+/instances.json', split_file='refcoco+/refs(unc).p'),
            dict(refcoco, ann_file='refcocog/instances.json', split_file='refcocog/refs(umd).p'),
            dict(
                type='GRefCocoDataset',
                data_root=coco_root,
                ann_file='grefcoco/instances.json',
                split_file='grefcoco/grefs(unc).json',
                data_prefix=dict(img_path='train2014/'),
                split='train',
                pipeline=train_pipeline,
            ),
            dict(
                type='OmniRefDataset',
                data_root='data/omniref/',
                split='text-train',
                data_prefix=dict(img_path='images/train2014/'),
                pipeline=train_pipeline,
                on_invalid='skip',
            ),
        ],
    ),
)
# Validate on the OmniRef text split.
val_dataloader = dict(dataset=dict(split='text-test'))
test_dataloader = val_dataloader
