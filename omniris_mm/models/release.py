"""Where a model config departs from the published OmniSegNet.

Each behaviour of the release that ours can change is a constructor argument of the
component that owns it; :data:`RELEASE_BEHAVIOURS` lists them with the release's value.
:func:`release_differences` reads a model config (unset arguments take the class
defaults) and names every switch that is not at the release's value: the model
converter prints it, and ``configs/omnisegnet/omnisegnet_swinb_release.py`` is the
config for which it is empty.
"""

import inspect
from typing import Any, List, NamedTuple, Optional

from mmdet.registry import MODELS

from .heads.adaptive_mask_head import TEST_CFG_DEFAULTS


class Behaviour(NamedTuple):
    component: Optional[str]  # key of the component in the model config; None: the detector
    arg: str  # constructor argument (``test_cfg.KEY`` for a test-time setting)
    release: Any  # the release's value
    effect: str  # what the release does
    forward: bool = True  # False: initialisation only (no effect on a loaded checkpoint)


RELEASE_BEHAVIOURS = (
    Behaviour(
        'backbone',
        'stage_out',
        'fusion',
        'stage i outputs LayerNorm(fusion output f_i); the gated sum x + gate(f_i) * f_i only feeds stage i+1',
    ),
    Behaviour(
        'backbone',
        'gate_zero_init',
        'both',
        'both projections of each tanh gate start at zero (the gates then never open)',
        forward=False,
    ),
    Behaviour('text_encoder', 'pad_to_max_tokens', True, 'token ids padded to max_tokens (20)'),
    Behaviour(
        'prompt_encoder',
        'prompt_region',
        'nearest',
        'the prompt region of a level is the prompt map resized to it by nearest neighbour',
    ),
    Behaviour('prompt_encoder', 'downscale_relu', True, 'the stride-8/16/32 prompt-embedding blocks end with a ReLU'),
    Behaviour('prompt_encoder', 'norm_eps', 1e-6, 'the prompt-embedding LayerNorm2d use eps 1e-6'),
    Behaviour('head', 'grid_prior', False, 'the region queries carry no grid prior'),
    Behaviour(
        'head',
        'minimap_merge',
        'logits',
        'the merged mask weights the region masks by the raw minimap logits',
    ),
    Behaviour(
        'head',
        'prompt_attn',
        'gated',
        'decoder layer 0: q + 0.1 * sigmoid(lang_weight) * LN(q + MHA(q, P, P)), no query position',
    ),
    Behaviour(
        'head',
        'mask_prompt_padding',
        False,
        "the decoder's prompt attention attends to every position, text padding included",
    ),
    Behaviour('head', 'zero_init_prompt_proj', True, 'the prompt projection starts at zero', forward=False),
    Behaviour(
        'head', 'zero_init_prompt_attn', False, "the prompt attention's output projection is not zeroed", forward=False
    ),
    Behaviour('head', 'instance_criterion', None, 'no instance branch: the answer is the union mask'),
    Behaviour(
        'head',
        'test_cfg.empty_on_no_target',
        False,
        'a "no target" answer keeps the mask the model predicts',
    ),
    Behaviour(None, 'prompt_type_embed', False, 'no prompt-type embeddings'),
    Behaviour(None, 'target_maps', False, 'no prompt on the target image, so no maps of them (ours: zero at first)'),
    Behaviour(
        None,
        'fusion',
        'union',
        'each prompt segmented on its own, the masks OR-ed, "no target" only if every prompt says so',
    ),
)


def _default(cfg: dict, arg: str) -> Any:
    cls = MODELS.get(cfg['type'])
    if cls is None:
        raise KeyError(f'{cfg["type"]} is not registered (import omniris_mm first)')
    return inspect.signature(cls.__init__).parameters[arg].default


def config_value(model_cfg: dict, component: Optional[str], arg: str) -> Any:
    """The value of ``arg`` (``test_cfg.KEY`` for a head test setting) of a component of an
    OmniSegNet config (None: the detector), its class default when the config leaves it out."""
    cfg = model_cfg if component is None else model_cfg[component]
    if arg.startswith('test_cfg.'):
        key = arg[len('test_cfg.') :]
        return (cfg.get('test_cfg') or {}).get(key, TEST_CFG_DEFAULTS[key])
    return cfg[arg] if arg in cfg else _default(cfg, arg)


def release_differences(model_cfg: dict) -> List[str]:
    """One line per release behaviour that ``model_cfg`` (an OmniSegNet config) changes.

    Args:
        model_cfg (dict): The ``model`` entry of a config.

    Returns:
        list[str]: ``"<component>.<arg>=<ours> (release: <value>): <what the release does>"``,
        initialisation-only switches marked as such; empty for the release's config.
    """
    lines = []
    for b in RELEASE_BEHAVIOURS:
        ours = config_value(model_cfg, b.component, b.arg)
        if ours == b.release:
            continue
        name = b.arg if b.component is None else f'{b.component}.{b.arg}'
        shown = 'set' if b.arg == 'instance_criterion' else repr(ours)
        kind = ' [initialisation only]' if not b.forward else ''
        lines.append(f'{name}={shown} (release: {b.release!r}){kind}: the release: {b.effect}')
    return lines
