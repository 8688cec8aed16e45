# refcoco+ val (unc splits; testA / testB: the sibling configs), read by mmdet's RefCocoDataset.
# Layout: data/coco/train2014/, data/coco/refcoco+/{refs(unc).p, instances.json}.
# Run: tools/test.py CONFIG CHECKPOINT (or tools/dist_test.sh CONFIG CHECKPOINT GPUS); prints the metric table.
# Published protocol (masks scored at 480 x 480): --cfg-options test_evaluator.eval_size="(480,480)"
_base_ = ['./refcoco_val.py']
test_dataloader = dict(dataset=dict(ann_file='refcoco+/instances.json', split_file='refcoco+/refs(unc).p'))
