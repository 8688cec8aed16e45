# PASCAL-5i fold 1, 1-shot (see pascal5i_fold0.py).
_base_ = ['./pascal5i_fold0.py']
test_dataloader = dict(dataset=dict(fold=1))
