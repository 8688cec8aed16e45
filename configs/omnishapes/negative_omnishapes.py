# Negative exemplars on OmniShapes' held-out images: per image up to 2 samples of a positive
# reference of one shape kind and a negative one of another kind in the image; the target is the
# positive kind's shapes. OmniRISMetric's gIoU is scored on the positive kind, and 'excluded' is
# the share of the negative kind's pixels that the answers cover. The same samples with the
# positive reference alone (the negative drawn, then left out):
#   python tools/test.py configs/omnishapes/negative_omnishapes.py CHECKPOINT
#   python tools/test.py configs/omnishapes/negative_omnishapes.py CHECKPOINT \
#       --cfg-options test_dataloader.dataset.drop_negatives=True
_base_ = ['./omnisegnet_tiny_2k_omnishapes_all.py']

# Loaded in the test process: a few hundred small samples, not worth starting loader workers for.
test_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='CocoVisualPromptDataset',
        data_root='data/omnishapes/',
        ann_file='instances_test.json',
        data_prefix=dict(img_path='images/'),
        targeted=False,
        no_target_per_image=0,
        negatives_per_image=2,
        pipeline={{_base_.test_pipeline}},
        test_mode=True,
    ),
)
test_cfg = dict(_delete_=True, type='OmniTestLoop')
test_evaluator = dict(_delete_=True, type='OmniRISMetric')
