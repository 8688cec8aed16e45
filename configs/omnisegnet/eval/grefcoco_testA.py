# gRefCOCO testA.
_base_ = ['./grefcoco_val.py']
test_dataloader = dict(dataset=dict(split='testA'))
