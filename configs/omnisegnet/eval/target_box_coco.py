# A box on the target (each instance's tight box) over a COCO-format instance file (default: COCO
# val2017): mIoU, the gIoU of OmniRISMetric with one object per sample (target/target_box/gIoU).
#   tools/test.py configs/omnisegnet/eval/target_box_coco.py CHECKPOINT
_base_ = ['./interactive_coco.py']
test_dataloader = dict(
    dataset=dict(
        prompt_type='target_box',
        pipeline=[
            dict(type='LoadImageFromFile', color_type='color_ignore_orientation'),
            dict(type='LoadVisualPrompts'),
            dict(type='OmniResize', scale=(480, 480), keep_ratio=False),
            dict(type='LoadOmniAnnotations'),
            dict(type='SynthesizePromptMaps', box_jitter=0.0),
            dict(type='PackOmniInputs'),
        ],
    )
)
test_cfg = dict(_delete_=True, type='OmniTestLoop')
test_evaluator = dict(_delete_=True, type='OmniRISMetric')
