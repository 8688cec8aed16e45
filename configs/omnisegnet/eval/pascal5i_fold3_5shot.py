# PASCAL-5i fold 3, 5-shot: the 1,000 episodes of pascal5i_fold3.py (the same queries, the same
# first support) with 4 more supports each, other images of the class (Pascal5iDataset num_shots);
# the 5 class masks form one prompt sequence. mIoU over the fold's 5 classes and FB-IoU.
_base_ = ['./pascal5i_fold3.py']
test_dataloader = dict(dataset=dict(num_shots=5))
