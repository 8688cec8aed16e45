"""projects/visual_prompt_mask2former: the stock Mask2Former config with OmniRIS's prompt neck and head,
trained for two iterations on real COCO images (shrunk to ResNet-18 and toy widths) and validated."""

import math
import os.path as osp
import sys

import pytest
import torch
from conftest import REPO, shared
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

CONFIG = osp.join(REPO, 'projects', 'visual_prompt_mask2former', 'configs', 'visual-prompt-mask2former_r50_coco.py')
LOSSES = {'loss_mask', 'loss_minimap', 'loss_no_target', 'loss_inst_cls', 'loss_inst_mask', 'loss_inst_dice'}
WATCHED = ('head.layers.0.prompt_attn.out_proj.weight', 'prompt_encoder.query_feat.weight', 'backbone.conv1.weight')


class Recorder(Hook):
    """Keeps the losses and the watched parameters after every training iteration, and the validation output."""

    def __init__(self):
        self.losses, self.params, self.batches, self.predictions, self.metrics = [], [], [], [], None

    def before_train(self, runner):
        self.params.append(self._watched(runner))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.losses.append({k: float(v) for k, v in outputs.items()})
        self.params.append(self._watched(runner))
        self.batches.append([bool(s.gt_no_target) for s in data_batch['data_samples']])

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.predictions += outputs

    def after_val_epoch(self, runner, metrics=None):
        self.metrics = metrics

    @staticmethod
    def _watched(runner):
        return {n: p.detach().clone() for n, p in runner.model.named_parameters() if n in WATCHED}


def tiny_cfg(root: str, work_dir: str) -> Config:
    """The project config at toy sizes on the two COCO sample images; everything else as configured."""
    if REPO not in sys.path:  # as tools/train.py does: `projects` becomes importable
        sys.path.insert(0, REPO)
    cfg = Config.fromfile(CONFIG)
    channels = (64, 128, 256, 512)
    cfg.model.backbone.update(depth=18, init_cfg=None)  # no download; a small stock ResNet
    cfg.model.prompt_encoder.update(
        in_channels=channels, embed_dims=32, num_queries=4, query_grid=(2, 2), num_layers=1, num_heads=4, ffn_dims=64
    )
    cfg.model.head.update(
        in_channels=channels, feat_channels=32, grid_size=(4, 4), num_layers=3, num_heads=4, ffn_dims=64
    )
    decoder = cfg.model.head.pixel_decoder
    decoder.norm_cfg.num_groups = 8
    decoder.encoder.num_layers = 1
    decoder.encoder.layer_cfg.self_attn_cfg.update(embed_dims=32, num_heads=4, num_points=2)
    decoder.encoder.layer_cfg.ffn_cfg.update(embed_dims=32, feedforward_channels=64)
    decoder.positional_encoding.num_feats = 16
    # Persons in both images; horses only in 439180, so 142238 gets a no-target sample about them.
    data = dict(ann_file=osp.join(root, 'instances.json'), data_prefix=dict(img_path=root), category_ids=[1, 19])
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        loader.dataset.update(data_root='', **data)
        loader.update(num_workers=0, persistent_workers=False)
        for step in loader.dataset.pipeline:
            if step.type == 'OmniResize':
                step.scale = (160, 160)
    cfg.train_dataloader.sampler.shuffle = False
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2, val_interval=2)  # validates after iteration 2
    cfg.default_hooks.checkpoint = None
    cfg.update(work_dir=work_dir, launcher='none', randomness=dict(seed=0))
    return cfg


def test_two_iterations_and_validation_on_coco_visual_prompts(tmp_path):
    root = shared('coco_val2017_sample')
    runner = Runner.from_cfg(tiny_cfg(root, str(tmp_path)))
    assert type(runner.model).__name__ == 'PlainBackboneOmniSegNet'
    assert type(runner.model.backbone).__name__ == 'ResNet'
    recorder = Recorder()
    runner.register_hook(recorder, priority='LOWEST')
    runner.train()

    # The first batch holds the person sample of 142238 and its no-target (horse) sample: every loss is live.
    assert sorted(recorder.batches[0]) == [False, True]
    assert set(recorder.losses[0]) == LOSSES | {'loss'}
    for name, value in recorder.losses[0].items():
        assert math.isfinite(value) and value > 0, (name, value)
    before, first, second = recorder.params
    # Step 1 trains the head's prompt cross-attention and the stock backbone (lr x 0.1); by step 2 the gradient
    # has reached the prompt-embedding neck through that attention (query_feat has no weight decay: only a
    # gradient moves it).
    assert not torch.equal(
        before['head.layers.0.prompt_attn.out_proj.weight'], first['head.layers.0.prompt_attn.out_proj.weight']
    )
    assert not torch.equal(before['backbone.conv1.weight'], first['backbone.conv1.weight'])
    assert not torch.equal(before['prompt_encoder.query_feat.weight'], second['prompt_encoder.query_feat.weight'])

    # Validation ran on the three test-mode samples and OmniRISMetric scored them.
    assert len(recorder.predictions) == 3
    for sample in recorder.predictions:
        h, w = sample.ori_shape
        assert sample.pred_sem_seg.sem_seg.shape == (1, h, w) == sample.gt_sem_seg.sem_seg.shape
        assert isinstance(sample.pred_no_target, bool)
        assert sample.pred_instances.masks.shape[1:] == (h, w)
        assert len(sample.pred_instances.scores) == len(sample.pred_instances.masks)
        if sample.pred_no_target:  # a no-target answer is empty (empty_on_no_target)
            assert not sample.pred_sem_seg.sem_seg.any() and len(sample.pred_instances) == 0
    assert [s.gt_no_target for s in recorder.predictions].count(True) == 1
    metrics = recorder.metrics
    # The metric's figures equal those computed from the definitions on the same predictions.
    from omniris_reference import reference_scores

    expected = reference_scores(
        (p.pred_sem_seg.sem_seg[0].numpy(), p.gt_sem_seg.sem_seg[0].numpy(), p.pred_no_target, p.gt_no_target)
        for p in recorder.predictions
    )
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, nan_ok=True), key
    no_target = [p for p in recorder.predictions if p.gt_no_target]
    assert metrics['no-target/N-acc'] == 100.0 * no_target[0].pred_no_target
