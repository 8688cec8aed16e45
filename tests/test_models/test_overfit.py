"""The tiny OmniSegNet overfits a handful of samples: the loss falls and gIoU on them reaches 90."""

import time

import torch
from mmdet.registry import METRICS
from mmengine.dataset import pseudo_collate
from model_utils import build_model

from omniris_mm.datasets import OmniRefDataset


def pipelines(size):
    load, resize = dict(type='LoadImageFromFile'), dict(type='OmniResize', scale=size, keep_ratio=False)
    ann, refs = dict(type='LoadOmniAnnotations'), dict(type='LoadVisualPrompts')
    tail = [dict(type='SynthesizePromptMaps'), dict(type='PackOmniInputs')]
    # For scoring, the ground truth is loaded after resizing: the metric works at the original size.
    return [load, ann, refs, resize] + tail, [load, refs, resize, ann] + tail


def handful(root, picks, size, **kwargs):
    train_pipe, test_pipe = pipelines(size)
    train, test = [], []
    for split, idxs in picks.items():
        for pipe, out in ((train_pipe, train), (test_pipe, test)):
            ds = OmniRefDataset(
                data_root=root,
                split=split,
                data_prefix=dict(img_path='images/'),
                pipeline=pipe,
                test_mode=True,
                **kwargs,
            )
            out += [ds[i] for i in idxs]
    return pseudo_collate(train), pseudo_collate(test)


def overfit(train, test, iters, lr=1e-3):
    model = build_model()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    curve = []
    start = time.time()
    model.train()
    for _ in range(iters):
        losses = model(**model.data_preprocessor(train, True), mode='loss')
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        curve.append(float(loss))
    model.eval()
    metric = METRICS.build(dict(type='OmniRISMetric'))
    with torch.no_grad():
        metric.process({}, model(**model.data_preprocessor(test, False), mode='predict'))
    return curve, metric.evaluate(len(test['inputs'])), time.time() - start


def check(curve, metrics, seconds):
    print(
        f'loss {curve[0]:.3f} -> {curve[-1]:.3f}; gIoU {metrics["gIoU"]:.1f} cIoU {metrics["cIoU"]:.1f}; '
        f'{seconds:.0f} s'
    )
    assert sum(curve[-10:]) / 10 < 0.3 * sum(curve[:10]) / 10
    assert metrics['gIoU'] >= 90.0
    assert seconds < 180


def test_overfit_omnishapes(omnishapes):
    train, test = handful(
        omnishapes, {'text-test': [0, 1, 2, 3], 'visual-test': [0, 1], 'omni-test': [0, 1]}, (128, 128)
    )
    check(*overfit(train, test, iters=150))
