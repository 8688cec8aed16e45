# OmniRef at 480 x 480 (the published input): text, visual (mask, box and scribble in one run)
# and omni samples mixed text:visual:omni = 7:2:1 per GPU stream (RatioMultiSourceSampler keeps
# the ratio across batches; change source_ratio to re-mix); the omni test split for validation.
dataset_type = 'OmniRefDataset'
data_root = 'data/omniref/'
img_scale = (480, 480)
backend_args = None
# Pixels as stored, EXIF orientation ignored, for target and reference images alike: COCO-style
# masks are drawn on the stored pixels (see LoadVisualPrompts).
color_type = 'color_ignore_orientation'
data_prefix = dict(img_path='images/train2014/')

train_pipeline = [
    dict(type='LoadImageFromFile', color_type=color_type, backend_args=backend_args),
    dict(type='LoadOmniAnnotations'),
    dict(type='LoadVisualPrompts', backend_args=backend_args),
    dict(type='OmniResize', scale=img_scale, keep_ratio=False),
    dict(type='OmniRandomFlip', prob=0.5),
    dict(type='SynthesizePromptMaps', prompt_probs=dict(mask=1.0, box=1.0, scribble=1.0)),
    dict(type='PackOmniInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type=color_type, backend_args=backend_args),
    dict(type='LoadVisualPrompts', backend_args=backend_args),
    dict(type='OmniResize', scale=img_scale, keep_ratio=False),
    dict(type='LoadOmniAnnotations'),
    dict(type='SynthesizePromptMaps', prompt_probs=dict(mask=1.0, box=1.0, scribble=1.0)),
    dict(type='PackOmniInputs'),
]
batch_size = 8  # per GPU
source_ratio = [7, 2, 1]  # text-train, visual-train, omni-train
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='RatioMultiSourceSampler', batch_size=batch_size, source_ratio=source_ratio),
    dataset=dict(
        type='ConcatDataset',
        datasets=[
            dict(
                type=dataset_type,
                data_root=data_root,
                split=split,
                data_prefix=data_prefix,
                pipeline=train_pipeline,
                on_invalid='skip',
            )
            for split in ('text-train', 'visual-train', 'omni-train')
        ],
    ),
)
val_dataloader = dict(
    batch_size=8,
    # Passes on the samples skipped under on_invalid='skip', which the metric counts and reports.
    collate_fn=dict(type='omni_collate'),
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='omni-test',
        data_prefix=data_prefix,
        pipeline=test_pipeline,
        test_mode=True,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='OmniRISMetric')
test_evaluator = val_evaluator
