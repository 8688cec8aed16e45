# Stage 3 of 3 with parts: the omni-modal joint stage (configs/omnisegnet_swinb.py) plus part-level
# sources from a PACO-style file (part categories "object:part", parts linked to their objects by
# obj_ann_id; see CocoPartDataset): part texts ("the ear of the dog", "all wheels") and part visual
# prompts ("parts like this"). Mixed by source_ratio per GPU stream (RatioMultiSourceSampler):
# OmniRef text : visual : omni : part text : part visual = 7 : 2 : 1 : 2 : 1. Starts, like the joint
# stage, from stage 2's last checkpoint.
#   tools/dist_train.sh configs/omnisegnet/omnisegnet_swinb_stage3_joint-parts.py 8
# Layout: data/paco/annotations/paco_lvis_v1_train.json with the COCO 2017 images under data/coco/
# (PACO-LVIS file names are train2017/... or val2017/..., relative to img_path).
_base_ = ['../omnisegnet_swinb.py']

train_pipeline = {{_base_.train_pipeline}}
batch_size = 8
source_ratio = [7, 2, 1, 2, 1]  # text-train, visual-train, omni-train, part text, part visual
part_source = dict(
    type='CocoPartDataset',
    data_root='data/',
    ann_file='paco/annotations/paco_lvis_v1_train.json',
    data_prefix=dict(img_path='coco/'),
    min_part_area=64.0,
    no_target_per_image=1,
    pipeline=train_pipeline,
    on_invalid='skip',
)
train_dataloader = dict(
    sampler=dict(_delete_=True, type='RatioMultiSourceSampler', batch_size=batch_size, source_ratio=source_ratio),
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(
                type='OmniRefDataset',
                data_root='data/omniref/',
                split=split,
                data_prefix=dict(img_path='images/train2014/'),
                pipeline=train_pipeline,
                on_invalid='skip',
            )
            for split in ('text-train', 'visual-train', 'omni-train')
        ]
        + [dict(part_source, modality='text'), dict(part_source, modality='visual', no_target_per_image=0)],
    ),
)
