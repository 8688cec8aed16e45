# The target-prompt job (omnisegnet_tiny_2k_omnishapes_target.py) plus negative exemplars across
# images as a fifth source: a positive reference of one shape kind and a negative one ("not like
# this") of another kind that the image has too; the target is the positive kind's shapes only
# (CocoVisualPromptDataset negatives_per_image on OmniShapes' instances_train.json). Batches of 10:
# the quickstart's 8 referring samples, one prompt on the target, one negative-exemplar sample.
# configs/omnishapes/negative_omnishapes.py scores them on held-out images.
#   python tools/train.py configs/omnishapes/omnisegnet_tiny_2k_omnishapes_negative.py
_base_ = ['./omnisegnet_tiny_2k_omnishapes_target.py']

train_pipeline = {{_base_.train_pipeline}}
target_train = {{_base_.target_train}}
negative_train = dict(
    type='CocoVisualPromptDataset',
    data_root='data/omnishapes/',
    ann_file='instances_train.json',
    data_prefix=dict(img_path='images/'),
    targeted=False,
    no_target_per_image=0,
    negatives_per_image=2,
    pipeline=train_pipeline,
)
train_dataloader = dict(
    batch_size=10,
    sampler=dict(batch_size=10, source_ratio=[2, 2, 1, 0.625, 0.625]),
    dataset=dict(
        datasets=[
            dict(
                type='OmniRefDataset',
                data_root='data/omnishapes/',
                ann_file='OmniRef.json',
                split=f'{kind}-train',
                data_prefix=dict(img_path='images/'),
                pipeline=train_pipeline,
                test_mode=False,
            )
            for kind in ('text', 'visual', 'omni')
        ]
        + [target_train, negative_train]
    ),
)
