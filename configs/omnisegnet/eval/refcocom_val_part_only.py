# RefCOCOm val, part only (the MRES benchmark; the other split x setting pairs: the sibling configs).
# Layout: data/refcocom/{annotations/val_part_only.json, masks/, images/train2014/} (the COCO train2014
# images; a link to them will do). The metric prints mIoU (the mean per-sample IoU) and cIoU, and in the
# object_part files their breakdown by granularity (part/mIoU, object/mIoU; see RefCocoMDataset).
# Run: tools/test.py CONFIG CHECKPOINT (or tools/dist_test.sh CONFIG CHECKPOINT GPUS); prints the metric table.
# Check the files first: python tools/analysis_tools/eval_oracle.py CONFIG (every figure 100).
_base_ = ['../../omnisegnet_swinb.py']
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='RefCocoMDataset',
        data_root='data/refcocom/',
        ann_file='annotations/val_part_only.json',
        data_prefix=dict(img_path='images/train2014/', mask_path='masks/'),
        pipeline={{_base_.test_pipeline}},
        test_mode=True,
    )
)
