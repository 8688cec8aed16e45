# The quickstart's job (tools/quickstart.sh): the tiny OmniSegNet on OmniShapes for 2,000
# iterations, every prompt kind in one model. Batches of 10 (RatioMultiSourceSampler, text :
# visual : omni : target : negative = 2 : 2 : 1 : 0.625 : 0.625): the 8 referring samples of
# omnisegnet_tiny_2k_omnishapes.py (text, visual with 1 to 3 exemplars of the kind, omni), one
# prompt on the target itself (clicks, a box or a scribble meaning that one shape) and one
# negative-exemplar sample ("like this, not like that"). The target-prompt maps reach the
# features (target_maps). Tested on the three referring splits as the referring-only job;
# interactive_omnishapes.py, target_box_omnishapes.py, kshot_omnishapes.py and
# negative_omnishapes.py (with --cfg-options model.target_maps=True) score the new kinds.
#   python tools/train.py configs/omnishapes/omnisegnet_tiny_2k_omnishapes_all.py
_base_ = ['./omnisegnet_tiny_2k_omnishapes_negative.py']

train_pipeline = {{_base_.train_pipeline}}
target_train = {{_base_.target_train}}
negative_train = {{_base_.negative_train}}
model = dict(target_maps=True)
train_dataloader = dict(
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
                num_shots=(1, 3) if kind == 'visual' else 1,
            )
            for kind in ('text', 'visual', 'omni')
        ]
        + [target_train, negative_train]
    ),
)
