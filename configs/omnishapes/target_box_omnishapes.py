# A box on the target (the tight box of each shape of OmniShapes' test images): mIoU, as the
# interactive-segmentation literature reports box prompts (one object per sample, so OmniRISMetric's
# gIoU is the mean IoU; its breakdown key is target/target_box/gIoU).
#   python tools/test.py configs/omnishapes/target_box_omnishapes.py CHECKPOINT
_base_ = ['./interactive_omnishapes.py']
image_cache = {{_base_.image_cache}}

test_dataloader = dict(
    dataset=dict(
        prompt_type='target_box',
        pipeline=[
            dict(type='CachedLoadImageFromFile', color_type='color_ignore_orientation', cache_bytes=image_cache),
            dict(type='LoadVisualPrompts', cache_bytes=image_cache),
            dict(type='OmniResize', scale=(128, 128), keep_ratio=False),
            dict(type='LoadOmniAnnotations'),
            dict(type='SynthesizePromptMaps', box_jitter=0.0),
            dict(type='PackOmniInputs'),
        ],
    )
)
test_cfg = dict(_delete_=True, type='OmniTestLoop')
test_evaluator = dict(_delete_=True, type='OmniRISMetric')
