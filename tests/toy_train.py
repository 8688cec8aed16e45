"""A toy mmengine run for the compat tests: python toy_train.py WORK_DIR MAX_ITERS RESUME(0|1) [LAUNCHER]."""

import sys

import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import omniris_mm  # noqa: F401  (applies omniris_mm.compat unless OMNIRIS_MM_DISABLE_COMPAT=1)


class Toy(BaseModel):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)

    def forward(self, inputs, labels=None, mode='tensor'):
        out = self.linear(torch.stack(inputs)).squeeze(-1)
        if mode == 'loss':
            return dict(loss=((out - torch.stack(labels)) ** 2).mean())
        return out


class Data(Dataset):
    def __len__(self):
        return 16

    def __getitem__(self, i):
        x = torch.randn(2, generator=torch.Generator().manual_seed(i))
        return dict(inputs=x, labels=x.sum())


def main():
    work_dir, max_iters, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3] == '1'
    launcher = sys.argv[4] if len(sys.argv) > 4 else 'none'
    torch.manual_seed(0)  # the model is built before the Runner seeds anything
    runner = Runner(
        model=Toy(),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=Data(), sampler=dict(type='DefaultSampler', shuffle=True), batch_size=2, num_workers=0
        ),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        resume=resume,
        launcher=launcher,
        randomness=dict(seed=0),
        default_scope='mmengine',
    )
    runner.train()
    weights = torch.cat([p.detach().flatten() for p in runner.model.parameters()])
    print('WEIGHTS', ' '.join(repr(v) for v in weights.tolist()))  # exact


if __name__ == '__main__':
    main()
