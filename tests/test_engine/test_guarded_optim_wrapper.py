"""A NaN or inf loss stops the run naming the iteration and the samples, or the step is skipped and counted."""

import pytest
import torch
from mmdet.registry import OPTIM_WRAPPERS
from mmengine.logging import MessageHub
from mmengine.registry import init_default_scope

from omniris_mm.engine.optimizers import BATCH_INFO_KEY


def make(**kwargs):
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    wrapper = OPTIM_WRAPPERS.build(
        dict(type='GuardedOptimWrapper', optimizer=torch.optim.SGD(model.parameters(), lr=0.1), **kwargs)
    )
    return model, wrapper


def step(model, wrapper, poison=None, iteration=0, ids=('a.json record 0', 'a.json record 1')):
    hub = MessageHub.get_current_instance()
    hub.update_info('iter', iteration)
    hub.update_info(BATCH_INFO_KEY, list(ids))
    loss = model(torch.ones(2, 3)).pow(2).mean()
    if poison is not None:
        loss = loss * poison
    wrapper.update_params(loss)


@pytest.mark.parametrize('poison', [float('nan'), float('inf')])
def test_nonfinite_loss_raises_with_iteration_and_samples(poison):
    model, wrapper = make()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(FloatingPointError, match=r'iteration 8; batch on this rank: a.json record 0; a.json record 1'):
        step(model, wrapper, poison, iteration=7)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_skip_mode_leaves_weights_and_counts():
    model, wrapper = make(on_nonfinite='skip', max_skips=2)
    step(model, wrapper)  # a finite step moves the weights
    after_good = [p.detach().clone() for p in model.parameters()]
    step(model, wrapper, float('nan'), iteration=1)
    step(model, wrapper, float('inf'), iteration=2)
    assert all(torch.equal(a, b) for a, b in zip(after_good, model.parameters()))
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())  # no NaN gradient carried over
    assert wrapper.skipped == 2
    assert MessageHub.get_current_instance().get_scalar('train/nonfinite_skips').current() == 2
    step(model, wrapper)
    assert all(torch.isfinite(p).all() and not torch.equal(a, p) for a, p in zip(after_good, model.parameters()))
    with pytest.raises(FloatingPointError, match='3 steps skipped'):
        step(model, wrapper, float('nan'), iteration=4)


def test_bad_policy_is_refused():
    with pytest.raises(ValueError, match='on_nonfinite'):
        make(on_nonfinite='ignore')


def test_omnishapes_foreach_optimizer_matches_the_loop():
    """The OmniShapes configs' AdamW and gradient clipping with foreach (the multi-tensor path, PyTorch's
    default on CUDA only): built through mmengine from the config, five clipped steps of a small net
    leave the weights and gradient norms the per-tensor loop leaves, bit for bit."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    init_default_scope('mmdet')
    cfg = Config.fromfile('configs/omnishapes/omnisegnet_tiny_omnishapes.py').optim_wrapper
    assert cfg.optimizer.foreach and cfg.clip_grad.foreach

    def train(foreach):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.LayerNorm(16), torch.nn.Linear(16, 3))
        wrapper_cfg = cfg.copy()
        wrapper_cfg.optimizer = dict(cfg.optimizer, foreach=foreach)
        wrapper_cfg.clip_grad = dict(cfg.clip_grad, foreach=foreach)
        wrapper = build_optim_wrapper(net, wrapper_cfg)
        assert wrapper.optimizer.defaults['foreach'] is foreach
        data = torch.Generator().manual_seed(1)
        norms = []
        for _ in range(5):
            x = torch.randn(8, 6, generator=data) * 10  # gradients large enough to be clipped
            wrapper.update_params(net(x).pow(2).mean())
            norms.append(wrapper.message_hub.get_scalar('train/grad_norm').current())
        return [p.detach().clone() for p in net.parameters()], norms

    (loop, loop_norms), (multi, multi_norms) = train(False), train(True)
    assert loop_norms == multi_norms and max(loop_norms) > cfg.clip_grad.max_norm  # clipping did act
    assert all(torch.equal(a, b) for a, b in zip(loop, multi))
