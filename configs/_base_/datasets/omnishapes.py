# OmniShapes: the synthetic set written by tools/dataset_converters/make_omnishapes.py,
# in the official OmniRef layout. Text, visual (all three prompt types) and omni samples.
dataset_type = 'OmniRefDataset'
data_root = 'data/omnishapes/'
img_scale = (128, 128)
backend_args = None
# Pixels as stored, EXIF orientation ignored, for target and reference images alike: COCO-style
# masks are drawn on the stored pixels (see LoadVisualPrompts).
color_type = 'color_ignore_orientation'
# Decoded images kept per process (CachedLoadImageFromFile, LoadVisualPrompts' cache_bytes): all
# 384 OmniShapes images take 21 MB decoded, read 21 times per training batch of the quickstart.
# Substituted into the pipelines below when the config is read: to change it, set cache_bytes on
# their steps (0 turns the cache off); a child config's image_cache does not reach them.
image_cache = 64 * 2**20

train_pipeline = [
    dict(type='CachedLoadImageFromFile', color_type=color_type, backend_args=backend_args, cache_bytes=image_cache),
    dict(type='LoadOmniAnnotations'),
    dict(type='LoadVisualPrompts', backend_args=backend_args, cache_bytes=image_cache),
    dict(type='OmniResize', scale=img_scale, keep_ratio=False),
    dict(type='OmniRandomFlip', prob=0.5),
    dict(type='SynthesizePromptMaps', prompt_probs=dict(mask=1.0, box=1.0, scribble=1.0)),
    dict(type='PackOmniInputs'),
]
# Annotations are loaded after resizing, so the ground truth keeps the original size
# and the metric scores at the original resolution.
test_pipeline = [
    dict(type='CachedLoadImageFromFile', color_type=color_type, backend_args=backend_args, cache_bytes=image_cache),
    dict(type='LoadVisualPrompts', backend_args=backend_args, cache_bytes=image_cache),
    dict(type='OmniResize', scale=img_scale, keep_ratio=False),
    dict(type='LoadOmniAnnotations'),
    dict(type='SynthesizePromptMaps', prompt_probs=dict(mask=1.0, box=1.0, scribble=1.0)),
    dict(type='PackOmniInputs'),
]


def _split(name, pipeline, test_mode):
    return dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='OmniRef.json',
        split=name,
        data_prefix=dict(img_path='images/'),
        pipeline=pipeline,
        test_mode=test_mode,
    )


train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='ConcatDataset', datasets=[_split(f'{k}-train', train_pipeline, False) for k in ('text', 'visual', 'omni')]
    ),
)
val_dataloader = dict(
    batch_size=8,
    # Passes on the samples skipped under on_invalid='skip', which the metric counts and reports.
    collate_fn=dict(type='omni_collate'),
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ConcatDataset', datasets=[_split(f'{k}-test', test_pipeline, True) for k in ('text', 'visual', 'omni')]
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type='OmniRISMetric')
test_evaluator = val_evaluator
del _split
