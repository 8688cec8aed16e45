# PASCAL-5i fold 0, 1-shot: 1,000 episodes (query + one support of the same class, its class mask
# as the visual prompt), fixed by the seed; mIoU over the fold's 5 classes and FB-IoU.
# Layout: data/VOCdevkit/VOC2012/{JPEGImages, SegmentationClassAug, ImageSets/Segmentation/val.txt};
# to use the common per-fold lists: --cfg-options test_dataloader.dataset.split_file=PATH/fold0.txt
# Run: tools/test.py CONFIG CHECKPOINT (or tools/dist_test.sh CONFIG CHECKPOINT GPUS).
_base_ = ['../../omnisegnet_swinb.py']
fold = 0
# Every episode has a target: a false "no target" must not blank the answer (mask and instances).
model = dict(head=dict(test_cfg=dict(empty_on_no_target=False)))
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='color_ignore_orientation'),
    dict(type='LoadVisualPrompts'),
    dict(type='OmniResize', scale=(480, 480), keep_ratio=False),
    dict(type='LoadFewShotSegMap'),
    dict(type='SynthesizePromptMaps'),
    dict(
        type='PackOmniInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'text', 'prompt_modality',
                   'prompt_types', 'setting', 'record_id', 'category_id', 'ref_metas'),
    ),
]  # yapf: disable
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='Pascal5iDataset',
        data_root='data/VOCdevkit/VOC2012/',
        fold=fold,
        num_episodes=1000,
        pipeline=test_pipeline,
    )
)
test_evaluator = dict(_delete_=True, type='FewShotSegMetric')
