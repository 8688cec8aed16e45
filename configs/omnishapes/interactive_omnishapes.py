# Clicks on the target, scored as interactive segmentation is (InteractiveTestLoop,
# InteractiveSegMetric): every shape of OmniShapes' test images, the first click at its centre,
# each next one at the centre of the largest error region of the last answer, up to 20 clicks;
# mIoU after one click, NoC@85 and NoC@90.
#   python tools/test.py configs/omnishapes/interactive_omnishapes.py CHECKPOINT
_base_ = ['./omnisegnet_tiny_2k_omnishapes_all.py']
image_cache = {{_base_.image_cache}}

target_test_pipeline = [
    dict(type='CachedLoadImageFromFile', color_type='color_ignore_orientation', cache_bytes=image_cache),
    dict(type='LoadVisualPrompts', cache_bytes=image_cache),
    dict(type='OmniResize', scale=(128, 128), keep_ratio=False),
    dict(type='LoadOmniAnnotations'),
    # The loop places its own clicks; the dataset's single click only marks the prompt kind.
    dict(type='SynthesizePromptMaps', target_prompt_probs=dict(click=1.0), num_clicks=(1, 1)),
    dict(type='PackOmniInputs'),
]
# Loaded in the test process: a few hundred small samples, not worth starting loader workers for.
# Batches of 32: a batch runs until its last object is done (up to 20 passes, the last ones for
# one or two objects), so fewer, fuller batches; the figures are those of batches of 8 to the last
# digit (the quickstart's checkpoint of 2026-12-06: mIoU@1 77.2353, NoC@85 6.1327, NoC@90 8.7653).
test_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    batch_size=32,
    dataset=dict(
        _delete_=True,
        type='CocoTargetPromptDataset',
        data_root='data/omnishapes/',
        ann_file='instances_test.json',
        data_prefix=dict(img_path='images/'),
        prompt_type='click',
        distractors=None,  # only the training clicks use them
        pipeline=target_test_pipeline,
        test_mode=True,
    ),
)
test_cfg = dict(_delete_=True, type='InteractiveTestLoop', max_clicks=20, stop_iou=0.9)
test_evaluator = dict(_delete_=True, type='InteractiveSegMetric', iou_thrs=(0.85, 0.9))
