# k-shot exemplars over a COCO-format instance file (default: COCO val2017): per image and
# category one sample whose target is every instance of the category, its visual prompt 5 masks
# of that category from other images (distinct instances, new images first, never the target
# image). The first reference and the prompt seed are the 1-shot sample's, so
#   tools/test.py configs/omnisegnet/eval/kshot_coco.py CHECKPOINT
#   tools/test.py configs/omnisegnet/eval/kshot_coco.py CHECKPOINT --cfg-options test_dataloader.dataset.num_shots=1
# score the same episodes with 5 and with 1 exemplar. Another set: --cfg-options
#   test_dataloader.dataset.data_root=ROOT/ test_dataloader.dataset.ann_file=FILE
#   test_dataloader.dataset.data_prefix.img_path=IMAGES/
_base_ = ['../../omnisegnet_swinb.py']
test_dataloader = dict(
    batch_size=4,
    dataset=dict(
        _delete_=True,
        type='CocoVisualPromptDataset',
        data_root='data/coco/',
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img_path='val2017/'),
        no_target_per_image=0,
        prompt_type='mask',
        num_shots=5,
        pipeline={{_base_.test_pipeline}},
        test_mode=True,
    ),
)
test_evaluator = dict(_delete_=True, type='OmniRISMetric')
