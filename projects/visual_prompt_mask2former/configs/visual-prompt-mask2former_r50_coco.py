# Stock MMDetection Mask2Former (ResNet-50, COCO instances) turned into a visual-prompt segmenter:
# every COCO instance is a prompt (mask, box or scribble on a reference image) for the images that
# hold its category. What changes relative to the stock config is listed in ../README.md.
#   python tools/train.py projects/visual_prompt_mask2former/configs/visual-prompt-mask2former_r50_coco.py
_base_ = ['mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py']

custom_imports = dict(
    imports=['omniris_mm', 'projects.visual_prompt_mask2former.visual_prompt_mask2former'],
    allow_failed_imports=False,
)

backbone_channels = (256, 512, 1024, 2048)  # ResNet-50, strides 4 to 32
prompt_dims = 256  # width of the visual prompt tokens (no text encoder: visual prompts only)
model = dict(
    _delete_=True,
    type='PlainBackboneOmniSegNet',
    # The stock normalisation; also batches the reference images and prompt maps.
    data_preprocessor=dict(
        type='OmniDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
    ),
    backbone={{_base_.model.backbone}},  # the stock ResNet-50 (torchvision weights), unchanged
    # Visual prompts only. For text prompts too, give a text encoder (e.g. dict(type='HFTextEncoder',
    # name_or_path='bert-base-uncased')), drop prompt_dims here and set the widths below to its width.
    text_encoder=None,
    prompt_dims=prompt_dims,
    prompt_encoder=dict(
        type='OmniPromptEncoder',
        in_channels=backbone_channels,
        embed_dims=256,
        out_dims=prompt_dims,
        num_queries=20,
        query_grid=(4, 5),
        num_layers=3,
        num_heads=8,
        num_points=4,
        ffn_dims=2048,
    ),
    head=dict(
        type='AdaptiveMaskHead',
        in_channels=backbone_channels,
        strides=(4, 8, 16, 32),
        feat_channels=256,
        prompt_dims=prompt_dims,
        grid_size=(10, 10),  # 100 queries, as the stock head
        num_layers=9,
        num_heads=8,
        ffn_dims=2048,
        pixel_decoder={{_base_.model.panoptic_head.pixel_decoder}},  # the stock MSDeformAttnPixelDecoder
        referring_criterion=dict(type='ReferringCriterion'),
        instance_criterion=dict(type='InstanceCriterion'),  # the stock Hungarian matching and losses
        test_cfg=dict(no_target_thr=0.5, instance_thr=0.5, mask_thr=0.5, empty_on_no_target=True),
    ),
)

# Data: any COCO-format instance file. The stock LSJ (RandomResize + RandomCrop) has no counterpart that
# moves the reference images with the target, so targets and references are resized and flipped together.
dataset_type = 'CocoVisualPromptDataset'
data_root = 'data/coco/'
image_size = (1024, 1024)
train_pipeline = [
    dict(type='LoadImageFromFile', color_type='color_ignore_orientation'),
    dict(type='LoadOmniAnnotations'),
    dict(type='LoadVisualPrompts'),
    dict(type='OmniResize', scale=image_size, keep_ratio=True),
    dict(type='OmniRandomFlip', prob=0.5),
    dict(type='SynthesizePromptMaps', prompt_probs=dict(mask=1.0, box=1.0, scribble=1.0)),
    dict(type='PackOmniInputs'),
]
# Annotations loaded after resizing: the ground truth keeps the original size, where the metric scores.
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='color_ignore_orientation'),
    dict(type='LoadVisualPrompts'),
    dict(type='OmniResize', scale=image_size, keep_ratio=True),
    dict(type='LoadOmniAnnotations'),
    dict(type='SynthesizePromptMaps', prompt_probs=dict(mask=1.0, box=1.0, scribble=1.0)),
    dict(type='PackOmniInputs'),
]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img_path='train2017/'),
        pipeline=train_pipeline,
        on_invalid='skip',
    )
)
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img_path='val2017/'),
        pipeline=test_pipeline,
        test_mode=True,
    )
)
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='OmniRISMetric')
test_evaluator = val_evaluator

# The stock optimizer (AdamW 1e-4, backbone x0.1, no decay on query and level embeddings, grad-norm
# clip 0.01) and schedule (368,750 iterations) are kept.
# As in the repository's default runtime: safe when a batch leaves part of the model unused.
find_unused_parameters = True
visualizer = dict(
    _delete_=True, type='OmniRISVisualizer', vis_backends=[dict(type='LocalVisBackend')], name='visualizer'
)
