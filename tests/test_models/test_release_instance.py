"""Instance masks on top of the released weights: the release-parity checkpoint (the published
code's own file, converted) with the instance branch added and trained alone on OmniShapes."""

import os.path as osp

import torch
from conftest import REPO
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from test_overfit import handful
from test_release_parity import _load, conv, reduced_release_cfg, word_tokenizer

TRAIN_ONLY = ('head.objectness', 'head.instance_embed')


def _predict(model, batch):
    model.eval()
    with torch.no_grad():
        return model(**model.data_preprocessor(batch, False), mode='predict')


def test_instance_config_trains_only_the_instance_branch_of_the_release_config():
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'omnisegnet', 'omnisegnet_swinb_release_instance.py'))
    release = Config.fromfile(osp.join(REPO, 'configs', 'omnisegnet', 'omnisegnet_swinb_release.py'))
    assert tuple(cfg.model.train_only) == TRAIN_ONLY and cfg.model.head.instance_criterion.type == 'InstanceCriterion'
    assert cfg.load_from.endswith('omnisegnet_release_converted.pth')
    for key in ('fusion', 'prompt_type_embed', 'backbone', 'prompt_encoder', 'text_encoder'):
        assert cfg.model[key] == release.model[key], key
    assert {k: v for k, v in cfg.model.head.items() if k != 'instance_criterion'} == {
        k: v for k, v in release.model.head.items() if k != 'instance_criterion'
    }


def test_instance_branch_trained_on_the_frozen_release_weights(omnishapes, tmp_path):
    import json

    from test_release_parity import PARITY

    with open(osp.join(PARITY, 'model_dims.json')) as f:
        dims = json.load(f)
    cfg = reduced_release_cfg(dims, word_tokenizer(tmp_path / 'tok', dims['bert_config']['vocab_size']))
    cfg.head.instance_criterion = dict(type='InstanceCriterion')
    cfg.train_only = TRAIN_ONLY
    state_dict, report = conv.convert(_load('release_small.pth')['model'], cfg)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    # The union answer of these random frozen weights is not the objects', so the test-time clean-up
    # that cuts the instances to it is off here: this test is about the instance branch itself.
    model.head.test_cfg.update(instance_in_union=False, instance_nms=None)
    result = model.load_state_dict(state_dict, strict=False)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(result.missing_keys) == trainable == set(report.not_in_release)
    assert all(n.startswith(TRAIN_ONLY) for n in trainable)
    # Visual prompts (the reduced text encoder has a toy vocabulary).
    train, test = handful(omnishapes, {'visual-test': [0, 1, 2, 3, 4, 5]}, (128, 128))
    before = _predict(model, test)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(TRAIN_ONLY)}
    branch = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(TRAIN_ONLY)}

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.0)
    model.train()
    assert not model.backbone.training and not model.head.pixel_decoder.training  # frozen: eval mode
    assert model.head.instance_embed.training
    curve = []
    for _ in range(300):  # about 70 s on 2 cores
        losses = model(**model.data_preprocessor(train, True), mode='loss')
        inst = losses['loss_inst_mask'] + losses['loss_inst_dice']
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
        curve.append(float(inst))
    after = _predict(model, test)

    print(f'instance mask + dice loss {curve[0]:.3f} -> {curve[-1]:.3f}')
    assert sum(curve[-5:]) < 0.1 * sum(curve[:5])
    for k, v in model.state_dict().items():
        if k in frozen:
            assert torch.equal(v, frozen[k]), k
        else:
            assert not torch.equal(v, branch[k]), k
    for a, b in zip(before, after):  # the release's answers are untouched
        assert torch.equal(a.pred_sem_seg.sem_seg, b.pred_sem_seg.sem_seg) and a.pred_no_target == b.pred_no_target
    # Kept instances (objectness > 0.5): none for the no-target samples; masks of the referred
    # objects for targeted ones.
    kept = []
    for sample in after:
        gt = sample.gt_instances.masks.to_tensor(torch.bool, 'cpu')
        if not len(gt):
            assert len(sample.pred_instances) == 0
        for mask in sample.pred_instances.masks:
            kept.append(max(_iou(mask[None], g) for g in gt))
    print('kept instance masks, IoU with their object:', [round(i, 2) for i in kept])
    # Every referred object is one query's mask. (Which queries to keep is learnt from the
    # objectness, which frozen random weights inform little: here every query is kept.)
    model.head.test_cfg.update(instance_thr=-1.0, no_target_thr=1.0)
    best = []
    for sample in _predict(model, test):
        pred = sample.pred_instances.masks
        assert len(pred) == model.head.grid_size[0] * model.head.grid_size[1]
        best += [_iou(pred, g) for g in sample.gt_instances.masks.to_tensor(torch.bool, 'cpu')]
    print('best instance-mask IoU per referred object:', [round(i, 2) for i in best])
    # Which queries pass the objectness is learnt from frozen random features here, so strays are kept
    # too (measured IoU 0.78, 0.5, 0.05, 0.33, 0.54, 0.0, 0.94; scoring and removing strays: issue 13).
    assert kept and max(kept) >= 0.9
    # With the mask losses on sampled points (mmdet's Mask2Former): measured 0.81-0.94 (full masks: 0.56-0.89).
    assert best and min(best) >= 0.75


def _iou(pred, gt):
    """Best IoU of the masks ``pred`` (K, H, W) with ``gt`` (H, W)."""
    inter = (pred & gt).flatten(1).sum(1).float()
    union = (pred | gt).flatten(1).sum(1).float()
    return float((inter / union).max())
