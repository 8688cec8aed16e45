# Fine-tuning on your own data (docs/finetune_custom_data.md): the quickstart's tiny model, with only
# the data, the prompt sources and the schedule changed. The data: the OmniRef layout that
# tools/dataset_converters/masks_to_omniref.py writes (its categories come from its instances.json;
# nothing to declare here). From the quickstart's model:
#   python tools/train.py configs/finetune/omnisegnet_tiny_finetune_custom.py \
#       --cfg-options load_from=work_dirs/quickstart/iter_2000.pth
_base_ = ['../omnishapes/omnisegnet_tiny_2k_omnishapes.py']

# -- data: your folder and its splits --------------------------------------------------------
data_root = 'data/my_omniref/'
train_splits = ('text-train', 'visual-train')  # add 'omni-train' if the converter wrote omni records
test_splits = ('text-test', 'visual-test')
train_pipeline = {{_base_.train_pipeline}}
test_pipeline = {{_base_.test_pipeline}}


def _splits(splits, pipeline, **kwargs):
    return dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[
            dict(
                type='OmniRefDataset',
                data_root=data_root,
                ann_file='OmniRef.json',
                split=split,
                data_prefix=dict(img_path='images/'),
                pipeline=pipeline,
                **kwargs,
            )
            for split in splits
        ],
    )


train_dataloader = dict(
    batch_size=4,
    sampler=dict(_delete_=True, type='RatioMultiSourceSampler', batch_size=4, source_ratio=[1, 1]),
    dataset=_splits(train_splits, train_pipeline, on_invalid='skip'),
)
val_dataloader = dict(batch_size=4, dataset=_splits(test_splits, test_pipeline, test_mode=True))
test_dataloader = val_dataloader
del _splits

# -- schedule: short, from a trained model, a tenth of the learning rate ---------------------
max_iters = 300
load_from = 'work_dirs/quickstart/iter_2000.pth'
train_cfg = dict(max_iters=max_iters, val_interval=max_iters + 1)
optim_wrapper = dict(optimizer=dict(lr=1e-4))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=max_iters))
