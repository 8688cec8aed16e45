# refcoco+ testA.
_base_ = ['./refcoco+_val.py']
test_dataloader = dict(dataset=dict(split='testA'))
