# RefCOCOm testB, object part (see refcocom_val_part_only.py).
_base_ = ['./refcocom_val_part_only.py']
test_dataloader = dict(dataset=dict(ann_file='annotations/testB_object_part.json'))
