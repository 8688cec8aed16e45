# refcoco+ val (unc splits; the other splits: the sibling configs), read by mmdet's RefCocoDataset.
# Layout: data/coco/train2014/, data/coco/refcoco+/{refs(unc).p, instances.json}.
# Run: tools/test.py CONFIG CHECKPOINT (or tools/dist_test.sh CONFIG CHECKPOINT GPUS); prints the metric table.
# Published protocol (masks scored at 480 x 480): --cfg-options test_evaluator.eval_size="(480,480)"
_base_ = ['../../omnisegnet_swinb.py']
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='RefCocoOmniDataset',
        data_root='data/coco/',
        ann_file='refcoco+/instances.json',
        split_file='refcoco+/refs(unc).p',
        data_prefix=dict(img_path='train2014/'),
        split='val',
        pipeline={{_base_.test_pipeline}},
        test_mode=True,
    )
)
