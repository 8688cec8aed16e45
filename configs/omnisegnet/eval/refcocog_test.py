# refcocog test.
_base_ = ['./refcocog_val.py']
test_dataloader = dict(dataset=dict(split='test'))
