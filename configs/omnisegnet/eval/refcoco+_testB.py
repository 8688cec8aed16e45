# refcoco+ testB.
_base_ = ['./refcoco+_val.py']
test_dataloader = dict(dataset=dict(split='testB'))
