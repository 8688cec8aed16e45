# gRefCOCO val (testA / testB: the sibling configs). Layout: data/coco/train2014/,
# data/coco/grefcoco/{grefs(unc).json, instances.json}.
# Run: tools/test.py CONFIG CHECKPOINT (or tools/dist_test.sh CONFIG CHECKPOINT GPUS); prints the metric table.
# Published protocol (masks scored at 480 x 480): --cfg-options test_evaluator.eval_size="(480,480)"
_base_ = ['../../omnisegnet_swinb.py']
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='GRefCocoDataset',
        data_root='data/coco/',
        ann_file='grefcoco/instances.json',
        split_file='grefcoco/grefs(unc).json',
        data_prefix=dict(img_path='train2014/'),
        split='val',
        pipeline={{_base_.test_pipeline}},
        test_mode=True,
    )
)
