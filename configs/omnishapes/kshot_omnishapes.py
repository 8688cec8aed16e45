# k-shot exemplars on OmniShapes' visual test split: every visual prompt given as 5 references of
# its shape kind (distinct instances, from as many reference images as there are), in one prompt
# sequence. The first reference and the prompt seed are the 1-shot sample's, so
#   python tools/test.py configs/omnishapes/kshot_omnishapes.py CHECKPOINT
#   python tools/test.py configs/omnishapes/kshot_omnishapes.py CHECKPOINT \
#       --cfg-options test_dataloader.dataset.num_shots=1
# score the same episodes with 5 and with 1 exemplar (the second is the quickstart's visual-test).
_base_ = ['./omnisegnet_tiny_2k_omnishapes_all.py']

# Loaded in the test process: a few hundred small samples, not worth starting loader workers for.
test_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='OmniRefDataset',
        data_root='data/omnishapes/',
        ann_file='OmniRef.json',
        split='visual-test',
        data_prefix=dict(img_path='images/'),
        pipeline={{_base_.test_pipeline}},
        test_mode=True,
        num_shots=5,
    ),
)
