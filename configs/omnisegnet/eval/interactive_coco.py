# Clicks on the target scored as interactive segmentation is, over a COCO-format instance file
# (default: COCO val2017): every non-crowd instance of at least min_area pixels, the first click
# at its centre, each next one at the centre of the largest error region of the last answer, up to
# 20 clicks or IoU 0.9. InteractiveSegMetric: mIoU@1, NoC@85, NoC@90, NoF@85/90.
# Another set: --cfg-options test_dataloader.dataset.data_root=ROOT/ test_dataloader.dataset.ann_file=FILE
#   test_dataloader.dataset.data_prefix.img_path=IMAGES/
# Box prompts on the target instead: ./target_box_coco.py.
#   tools/test.py configs/omnisegnet/eval/interactive_coco.py CHECKPOINT
_base_ = ['../../omnisegnet_swinb.py']
interactive_pipeline = [
    dict(type='LoadImageFromFile', color_type='color_ignore_orientation'),
    dict(type='LoadVisualPrompts'),
    dict(type='OmniResize', scale=(480, 480), keep_ratio=False),
    dict(type='LoadOmniAnnotations'),
    # The loop places its own clicks; the dataset's single click only marks the prompt kind.
    dict(type='SynthesizePromptMaps', target_prompt_probs=dict(click=1.0), num_clicks=(1, 1)),
    dict(type='PackOmniInputs'),
]
test_dataloader = dict(
    batch_size=4,
    dataset=dict(
        _delete_=True,
        type='CocoTargetPromptDataset',
        data_root='data/coco/',
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img_path='val2017/'),
        min_area=100.0,
        prompt_type='click',
        distractors=None,  # only the training clicks use them
        pipeline=interactive_pipeline,
        test_mode=True,
    ),
)
test_cfg = dict(_delete_=True, type='InteractiveTestLoop', max_clicks=20, stop_iou=0.9)
test_evaluator = dict(_delete_=True, type='InteractiveSegMetric', iou_thrs=(0.85, 0.9))
