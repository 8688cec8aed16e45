# gRefCOCO testB.
_base_ = ['./grefcoco_val.py']
test_dataloader = dict(dataset=dict(split='testB'))
