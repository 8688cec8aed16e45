# refcoco testA.
_base_ = ['./refcoco_val.py']
test_dataloader = dict(dataset=dict(split='testA'))
