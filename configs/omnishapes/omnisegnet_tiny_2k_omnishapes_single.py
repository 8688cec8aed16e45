# The quickstart's schedule without omni samples: text : visual = 1 : 1 in every batch of 8, the same
# 2,000 iterations, tested on all three splits. This is the schedule the published fusion can train
# (`model.fusion='union'` segments each prompt alone and ORs the masks, so it cannot learn from a
# text + visual sample); it compares the two fusions on equal training data (issue 10, point 5):
#   python .dev_scripts/sweep_switches.py --protocols single --variants ours union
_base_ = ['./omnisegnet_tiny_2k_omnishapes.py']
_train_split = dict(
    type='OmniRefDataset',
    data_root='data/omnishapes/',
    ann_file='OmniRef.json',
    data_prefix=dict(img_path='images/'),
    pipeline={{_base_.train_pipeline}},
    test_mode=False,
)
train_dataloader = dict(
    sampler=dict(source_ratio=[1, 1]),
    dataset=dict(datasets=[dict(_train_split, split='text-train'), dict(_train_split, split='visual-train')]),
)
del _train_split
