"""Convert the published OmniSegNet checkpoint (detectron2 layout) to this codebase.

    python tools/model_converters/omnisegnet_official_to_mmdet.py SRC DST [--config CONFIG]

SRC is the released file: a dict whose ``model`` entry holds the state dict (original Swin
names ``backbone.layers.N.blocks.M...``, BERT under ``text_encoder.*``, the ReLA-style head
under ``sem_seg_head.*``). DST is written as ``{'state_dict': ..., 'meta': ...}`` for
``load_from`` / ``mmengine.runner.load_checkpoint`` with CONFIG: by default
``configs/omnisegnet/omnisegnet_swinb_release.py``, the config whose forward pass is the
release's; ``configs/omnisegnet_swinb.py`` (ours) to fine-tune from the release.

Every official key lands under one of three headings (the last two name each key):

- **mapped** to the key of ours with the same meaning (renamed; Conv1d 1x1 weights of the
  prompt fusion become ``nn.Linear`` weights; Swin patch-merging channels reordered by
  mmdet's ``swin_converter``; the prompt generator's deformable-attention levels reversed);
- **dropped on purpose**: parameters the release builds but never uses, and a constant
  buffer of older transformers versions;
- **not mapped**: the release has it, CONFIG has nothing with that meaning (never forced in):
  ``lang_weight`` unless CONFIG's head has the release's gated prompt attention.

For the release config all 1,035 keys are mapped or dropped and the converted file holds
exactly the model's parameters. For a config of ours, its ours-only parameters are named: the
prompt-type embeddings are written as zeros (adding nothing to the tokens, as in the
release); the instance branch receives nothing and keeps its initialisation (train it with
``configs/omnisegnet/omnisegnet_swinb_release_instance.py``). The behaviours in which CONFIG
departs from the release (``omniris_mm.models.release_differences``) are listed.

:func:`convert` and :func:`to_official` are the two directions (official -> ours -> official
is bit-exact for every mapped key).
"""

import argparse
import os.path as osp
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Pattern, Tuple

import torch
from mmdet.models.backbones.swin import swin_converter
from mmengine.config import Config
from torch import Tensor

from omniris_mm.engine import load_checkpoint_file
from omniris_mm.models import PROMPT_TYPES, config_value, release_differences

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RELEASE_CONFIG = osp.join(REPO, 'configs', 'omnisegnet', 'omnisegnet_swinb_release.py')

# Published prompt generator: multi-scale deformable attention (Deformable DETR layout), 8 heads, 4 levels.
PROMPT_ATTN_HEADS = 8
PROMPT_ATTN_LEVELS = 4

# Built by the release, never read by its forward pass (about 0.69 M parameters).
UNUSED = {
    r'feature_map_proj\..+': 'a 1x1 conv over all four Swin stages that the release never calls',
    r'prompt_encoder\.ref_point_head\..+': 'conditional query positions, disabled: vis_prompts_pos is used instead',
    r'prompt_encoder\.refpoint_embed\.weight': 'learnt anchor boxes, unused: the reference points are a fixed 4x5 grid',
    r'prompt_encoder\.reference_points': 'learnt reference points, unused: the reference points are a fixed 4x5 grid',
    r'prompt_encoder\.level_embed': 'added to the memory positions, which deformable cross-attention never reads',
}
# Non-learnt buffers that some transformers versions save; our BERT recomputes them.
IGNORED = {
    r'text_encoder\.embeddings\.position_ids': 'constant buffer of older transformers versions (arange)',
}
LANG_WEIGHT = 'sem_seg_head.predictor.lang_weight'
# Ours, absent from the release: what the converter gives them when the config has them.
PROMPT_TYPE_EMBED = 'prompt_type_embed.weight'
INSTANCE_BRANCH = (
    'head.objectness.weight',
    'head.objectness.bias',
    *(f'head.instance_embed.layers.{i}.{p}' for i in range(3) for p in ('weight', 'bias')),
)


class Target(NamedTuple):
    """What the model of a config has of the ours-only and release-only parameters."""

    gated_prompt_attn: bool  # head.layers.0.lang_weight exists
    prompt_type_embed: bool
    target_maps: bool
    instance_branch: bool
    differences: Tuple[str, ...]  # release_differences of the config

    @classmethod
    def of(cls, model_cfg: Mapping) -> 'Target':
        return cls(
            gated_prompt_attn=config_value(model_cfg, 'head', 'prompt_attn') == 'gated',
            prompt_type_embed=config_value(model_cfg, None, 'prompt_type_embed'),
            target_maps=config_value(model_cfg, None, 'target_maps'),
            instance_branch=bool(config_value(model_cfg, 'head', 'instance_criterion')),
            differences=tuple(release_differences(model_cfg)),
        )


def load_model_cfg(config: str = RELEASE_CONFIG) -> Mapping:
    """The ``model`` entry of a config file."""
    return Config.fromfile(config).model


def _conv1d_to_linear(value: Tensor) -> Tensor:
    return value[..., 0] if value.dim() == 3 else value


def _linear_to_conv1d(value: Tensor) -> Tensor:
    return value[..., None] if value.dim() == 2 else value


def flip_levels(value: Tensor, num_heads: int = PROMPT_ATTN_HEADS, num_levels: int = PROMPT_ATTN_LEVELS) -> Tensor:
    """Reverse the level axis of a deformable attention's ``sampling_offsets`` or
    ``attention_weights`` (weight or bias; rows laid out as heads x levels x points [x 2]).

    The release feeds its prompt generator the levels coarse first (strides 32 to 4, its
    ``input_proj.0`` takes the 1024-channel map); ours fine first (strides 4 to 32). Value
    and output projections are per position and need nothing. The map is its own inverse.
    """
    return value.reshape(num_heads, num_levels, -1, *value.shape[1:]).flip(1).reshape(value.shape)


class Transform(NamedTuple):
    to_ours: Callable[[Tensor], Tensor]
    to_official: Callable[[Tensor], Tensor]


def _same(value: Tensor) -> Tensor:
    return value


SAME = Transform(_same, _same)
CONV1D = Transform(_conv1d_to_linear, _linear_to_conv1d)  # LAVT's fusion uses Conv1d(k=1), ours nn.Linear
LEVELS = Transform(flip_levels, flip_levels)

# (official template, our template, transform). Placeholders: {i}, {j} an index, {p} one name
# component, {rest} anything. Swin's own blocks go through mmdet's swin_converter instead.
PD, HPD = 'sem_seg_head.pixel_decoder.', 'head.pixel_decoder.'
PR = 'sem_seg_head.predictor.'
PE = 'prompt_encoder.'
RULES: Tuple[Tuple[str, str, Transform], ...] = (
    # Prompt fusion after each Swin stage (LAVT's pixel-word attention) and its tanh gates.
    ('backbone.layers.{i}.fusion.vis_project.0.{p}', 'backbone.fusions.{i}.vis_project.0.{p}', CONV1D),
    ('backbone.layers.{i}.fusion.image_lang_att.f_query.0.{p}', 'backbone.fusions.{i}.query.{p}', CONV1D),
    ('backbone.layers.{i}.fusion.image_lang_att.f_key.0.{p}', 'backbone.fusions.{i}.key.{p}', CONV1D),
    ('backbone.layers.{i}.fusion.image_lang_att.f_value.0.{p}', 'backbone.fusions.{i}.value.{p}', CONV1D),
    ('backbone.layers.{i}.fusion.image_lang_att.W.0.{p}', 'backbone.fusions.{i}.attn_out.{p}', CONV1D),
    ('backbone.layers.{i}.fusion.project_mm.0.{p}', 'backbone.fusions.{i}.project_mm.0.{p}', CONV1D),
    ('backbone.layers.{i}.res_gate.{j}.{p}', 'backbone.fusion_gates.{i}.{j}.{p}', SAME),
    # Text encoder and the LayerNorm on its tokens.
    ('text_encoder.{rest}', 'text_encoder.model.{rest}', SAME),
    ('lang_norm.{p}', 'text_norm.{p}', SAME),
    # Omni-Prompt Encoder: prompt embedding (PEM), reference projections, prompt generator.
    ('vis_prompts.weight', PE + 'query_feat.weight', SAME),
    (PE + 'vis_prompts_pos.weight', PE + 'query_pos.weight', SAME),
    (PE + 'downscale1.{i}.{p}', PE + 'prompt_embed.{i}.{p}', SAME),
    (PE + 'downscale2.{i}.{p}', PE + 'prompt_downscale.0.{i}.{p}', SAME),
    (PE + 'downscale3.{i}.{p}', PE + 'prompt_downscale.1.{i}.{p}', SAME),
    (PE + 'downscale4.{i}.{p}', PE + 'prompt_downscale.2.{i}.{p}', SAME),
    *((PE + f'input_proj.{k}.{{i}}.{{p}}', PE + f'input_proj.{3 - k}.{{i}}.{{p}}', SAME) for k in range(4)),
    (PE + 'layers.{i}.cross_attn.sampling_offsets.{p}', PE + 'layers.{i}.cross_attn.sampling_offsets.{p}', LEVELS),
    (PE + 'layers.{i}.cross_attn.attention_weights.{p}', PE + 'layers.{i}.cross_attn.attention_weights.{p}', LEVELS),
    (PE + 'layers.{i}.cross_attn.value_proj.{p}', PE + 'layers.{i}.cross_attn.value_proj.{p}', SAME),
    (PE + 'layers.{i}.cross_attn.output_proj.{p}', PE + 'layers.{i}.cross_attn.output_proj.{p}', SAME),
    (PE + 'layers.{i}.norm1.{p}', PE + 'layers.{i}.norm1.{p}', SAME),
    (PE + 'layers.{i}.self_attn.{rest}', PE + 'layers.{i}.self_attn_ffn.self_attn.{rest}', SAME),
    (PE + 'layers.{i}.norm2.{p}', PE + 'layers.{i}.self_attn_ffn.norm_self.{p}', SAME),
    (PE + 'layers.{i}.linear1.{p}', PE + 'layers.{i}.self_attn_ffn.ffn.0.{p}', SAME),
    (PE + 'layers.{i}.linear2.{p}', PE + 'layers.{i}.self_attn_ffn.ffn.3.{p}', SAME),
    (PE + 'layers.{i}.norm3.{p}', PE + 'layers.{i}.self_attn_ffn.norm_ffn.{p}', SAME),
    (PE + 'norm.{p}', PE + 'norm.{p}', SAME),
    ('lang_in_linear.{p}', PE + 'out_proj.{p}', SAME),
    ('lang_in_norm.{p}', PE + 'out_norm.{p}', SAME),
    # Pixel decoder: detectron2's MSDeformAttnPixelDecoder -> mmdet's (same level order, coarse first).
    (PD + 'input_proj.{i}.0.{p}', HPD + 'input_convs.{i}.conv.{p}', SAME),
    (PD + 'input_proj.{i}.1.{p}', HPD + 'input_convs.{i}.gn.{p}', SAME),
    (PD + 'transformer.level_embed', HPD + 'level_encoding.weight', SAME),
    (PD + 'transformer.encoder.layers.{i}.self_attn.{rest}', HPD + 'encoder.layers.{i}.self_attn.{rest}', SAME),
    (PD + 'transformer.encoder.layers.{i}.norm1.{p}', HPD + 'encoder.layers.{i}.norms.0.{p}', SAME),
    (PD + 'transformer.encoder.layers.{i}.linear1.{p}', HPD + 'encoder.layers.{i}.ffn.layers.0.0.{p}', SAME),
    (PD + 'transformer.encoder.layers.{i}.linear2.{p}', HPD + 'encoder.layers.{i}.ffn.layers.1.{p}', SAME),
    (PD + 'transformer.encoder.layers.{i}.norm2.{p}', HPD + 'encoder.layers.{i}.norms.1.{p}', SAME),
    (PD + 'mask_features.{p}', HPD + 'mask_feature.{p}', SAME),
    (PD + 'adapter_1.weight', HPD + 'lateral_convs.0.conv.weight', SAME),
    (PD + 'adapter_1.norm.{p}', HPD + 'lateral_convs.0.gn.{p}', SAME),
    (PD + 'layer_1.weight', HPD + 'output_convs.0.conv.weight', SAME),
    (PD + 'layer_1.norm.{p}', HPD + 'output_convs.0.gn.{p}', SAME),
    # Referring decoder: RIA (masked cross-attention), RLA language attention (layer 0), RLA vision, FFN.
    (PR + 'RIA_layers.{i}.multihead_attn.{rest}', 'head.layers.{i}.cross_attn.{rest}', SAME),
    (PR + 'RIA_layers.{i}.norm.{p}', 'head.layers.{i}.norm_cross.{p}', SAME),
    (PR + 'lang_proj.weight', 'head.prompt_proj.weight', SAME),
    (PR + 'lang_weight', 'head.layers.0.lang_weight', SAME),  # only for a gated prompt attention
    (PR + 'RLA_lang_att.multihead_attn.{rest}', 'head.layers.0.prompt_attn.{rest}', SAME),
    (PR + 'RLA_lang_att.norm.{p}', 'head.layers.0.norm_prompt.{p}', SAME),
    (PR + 'RLA_vision.{i}.self_attn.{rest}', 'head.layers.{i}.self_attn_ffn.self_attn.{rest}', SAME),
    (PR + 'RLA_vision.{i}.norm.{p}', 'head.layers.{i}.self_attn_ffn.norm_self.{p}', SAME),
    (PR + 'transformer_ffn_layers.{i}.linear1.{p}', 'head.layers.{i}.self_attn_ffn.ffn.0.{p}', SAME),
    (PR + 'transformer_ffn_layers.{i}.linear2.{p}', 'head.layers.{i}.self_attn_ffn.ffn.3.{p}', SAME),
    (PR + 'transformer_ffn_layers.{i}.norm.{p}', 'head.layers.{i}.self_attn_ffn.norm_ffn.{p}', SAME),
    (PR + 'decoder_norm.{p}', 'head.decoder_norm.{p}', SAME),
    (PR + 'query_feat.weight', 'head.query_feat.weight', SAME),
    (PR + 'query_embed.weight', 'head.query_pos.weight', SAME),
    (PR + 'level_embed.weight', 'head.level_embed.weight', SAME),
    (PR + 'minimap_embed.{p}', 'head.minimap_embed.{p}', SAME),
    (PR + 'nt_embed.layers.{i}.{p}', 'head.nt_embed.layers.{i}.{p}', SAME),
    (PR + 'mask_embed.layers.{i}.{p}', 'head.mask_embed.layers.{i}.{p}', SAME),
)
# The plain Swin part of the backbone (everything but the fusion modules and gates).
SWIN_OFFICIAL = re.compile(r'backbone\.(patch_embed\.|norm\d\.|layers\.\d+\.(blocks\.\d+|downsample)\.).+')
SWIN_OURS = re.compile(r'backbone\.(patch_embed\.|norm\d\.|stages\.\d+\.(blocks\.\d+|downsample)\.).+')
PLACEHOLDERS = {'i': r'\d+', 'j': r'\d+', 'p': r'[^.]+', 'rest': r'.+'}


def _compile(template: str) -> Pattern:
    parts = re.split(r'\{(\w+)\}', template)  # literal, name, literal, name, ...
    return re.compile(
        ''.join(re.escape(part) if n % 2 == 0 else f'(?P<{part}>{PLACEHOLDERS[part]})' for n, part in enumerate(parts))
    )


class _Rule(NamedTuple):
    source: Pattern
    target: str
    transform: Callable[[Tensor], Tensor]


def _rules(to_ours: bool) -> List[_Rule]:
    if to_ours:
        return [_Rule(_compile(off), ours, t.to_ours) for off, ours, t in RULES]
    return [_Rule(_compile(ours), off, t.to_official) for off, ours, t in RULES]


def _apply(rules: List[_Rule], key: str) -> Optional[Tuple[str, Callable[[Tensor], Tensor]]]:
    """The renamed key and value transform of the one rule matching ``key`` (None if none)."""
    found = [(rule, m) for rule in rules if (m := rule.source.fullmatch(key))]
    if len(found) > 1:
        raise RuntimeError(f'{key}: matched by {len(found)} conversion rules; the table is ambiguous')
    if not found:
        return None
    rule, match = found[0]
    return rule.target.format(**match.groupdict()), rule.transform


def _swin_to_official(key: str, value: Tensor) -> Tuple[str, Tensor]:
    """The inverse of mmdet's ``swin_converter`` for one key of ours (``backbone.`` included)."""
    name = key.replace('backbone.stages.', 'backbone.layers.', 1).replace('.attn.w_msa.', '.attn.')
    name = name.replace('.ffn.layers.0.0.', '.mlp.fc1.').replace('.ffn.layers.1.', '.mlp.fc2.')
    name = name.replace('patch_embed.projection.', 'patch_embed.proj.')
    # swin_converter reorders patch-merging channels from the original 2x2 concatenation order
    # (x0, x1, x2, x3) to nn.Unfold's interleaved order; undo that.
    if '.downsample.reduction.' in key:
        out_c, in_c = value.shape
        value = value.reshape(out_c, in_c // 4, 4).transpose(1, 2)[:, [0, 2, 1, 3]].reshape(out_c, in_c)
    elif '.downsample.norm.' in key:
        value = value.reshape(-1, 4).transpose(0, 1)[[0, 2, 1, 3]].reshape(-1)
    return name, value


def _first_match(patterns: Mapping[str, str], key: str) -> Optional[str]:
    return next((reason for pattern, reason in patterns.items() if re.fullmatch(pattern, key)), None)


@dataclass
class ConversionReport:
    """Where each official key went, and what the target config adds or changes.

    Attributes:
        mapped (dict): official key -> our key.
        dropped (dict): official key -> why it is left out on purpose (unused, constant buffer).
        unmapped (dict): official key -> why the target model has no counterpart.
        not_in_release (dict): our key -> what it is and what the converter gave it.
        differences (tuple): The target config's departures from the release's behaviour.
        num_params (int): Elements of the mapped floating-point tensors.
        num_buffer_elements (int): Elements of the mapped integer buffers (Swin's
            ``relative_position_index``, constant, identical to ours by construction).
        num_dropped_params (int): Elements of the dropped floating-point tensors.
    """

    mapped: Dict[str, str] = field(default_factory=OrderedDict)
    dropped: Dict[str, str] = field(default_factory=OrderedDict)
    unmapped: Dict[str, str] = field(default_factory=OrderedDict)
    not_in_release: Dict[str, str] = field(default_factory=OrderedDict)
    differences: Tuple[str, ...] = ()
    num_params: int = 0
    num_buffer_elements: int = 0
    num_dropped_params: int = 0

    def summary(self) -> str:
        total = len(self.mapped) + len(self.dropped) + len(self.unmapped)
        lines = [
            f'accounted for: {len(self.mapped) + len(self.dropped)} of {total} official keys '
            f'({len(self.mapped)} mapped, {len(self.dropped)} dropped on purpose, {len(self.unmapped)} not mapped)',
            f'mapped: {len(self.mapped)} official keys ({self.num_params:,} parameters, '
            f'{self.num_buffer_elements:,} constant index-buffer elements)',
            f'dropped on purpose: {len(self.dropped)} keys ({self.num_dropped_params:,} parameters)',
            *(f'  {k}: {why}' for k, why in self.dropped.items()),
            f'NOT mapped (no counterpart in this config): {len(self.unmapped)} keys',
            *(f'  {k}: {why}' for k, why in self.unmapped.items()),
            f'ours, not in the release: {len(self.not_in_release)} keys',
            *(f'  {k}: {why}' for k, why in self.not_in_release.items()),
            f'behaviours in which this config departs from the release: {len(self.differences)}',
            *(f'  - {line}' for line in self.differences),
        ]
        return '\n'.join(lines)


def convert(
    official_state_dict: Mapping[str, Tensor], model_cfg: Optional[Mapping] = None
) -> Tuple['OrderedDict[str, Tensor]', ConversionReport]:
    """Official state dict -> (state dict for ``model_cfg``'s model, report).

    Args:
        official_state_dict (Mapping[str, Tensor]): The release's ``checkpoint['model']``.
        model_cfg (Mapping, optional): The target config's ``model``; None: the release
            config (``configs/omnisegnet/omnisegnet_swinb_release.py``).

    Returns:
        tuple: The converted ``OrderedDict`` and a :class:`ConversionReport`.
    """
    model_cfg = load_model_cfg() if model_cfg is None else model_cfg
    target = Target.of(model_cfg)
    rules = _rules(to_ours=True)
    converted, report = OrderedDict(), ConversionReport(differences=target.differences)
    for key, value in official_state_dict.items():
        value = value if isinstance(value, Tensor) else torch.as_tensor(value)
        why_dropped = _first_match({**UNUSED, **IGNORED}, key)
        if why_dropped is not None:
            report.dropped[key] = why_dropped
            report.num_dropped_params += value.numel() if value.is_floating_point() else 0
            continue
        if key == LANG_WEIGHT and not target.gated_prompt_attn:
            report.unmapped[key] = (
                "scalar gate of the release's first-layer prompt attention; this config's head has "
                "prompt_attn='replace' (an ungated sublayer); prompt_attn='gated' takes it"
            )
            continue
        renamed = _apply(rules, key)
        if renamed is not None:
            new_key, transform = renamed
            new_value = transform(value)
        elif SWIN_OFFICIAL.fullmatch(key):
            ((new_key, new_value),) = swin_converter({key[len('backbone.') :]: value}).items()
        else:
            report.unmapped[key] = 'no counterpart known to this converter'
            continue
        if new_key in converted:
            raise RuntimeError(f'{key} and another key both map to {new_key}')
        converted[new_key] = new_value
        report.mapped[key] = new_key
        if new_value.is_floating_point():
            report.num_params += new_value.numel()
        else:
            report.num_buffer_elements += new_value.numel()
    if target.prompt_type_embed:
        dims = model_cfg['backbone'].get('prompt_dims', 768)
        converted[PROMPT_TYPE_EMBED] = torch.zeros(len(PROMPT_TYPES), dims)
        report.not_in_release[PROMPT_TYPE_EMBED] = (
            f'prompt-type embeddings ({", ".join(PROMPT_TYPES)}): written as zeros, so they add nothing '
            'to the tokens (as the release, which has none)'
        )
    if target.target_maps:
        backbone = model_cfg['backbone']
        # mmdet's SwinTransformer defaults (PromptFusedSwin passes these on to it)
        dims, out_indices = backbone.get('embed_dims', 96), backbone.get('out_indices', (0, 1, 2, 3))
        for level, i in enumerate(out_indices):
            channels = dims * 2**i
            for name, shape in (('weight', (channels, 2, 1, 1)), ('bias', (channels,))):
                key = f'target_map_embed.{level}.{name}'
                converted[key] = torch.zeros(shape)
                report.not_in_release[key] = (
                    'maps of the prompts on the target: written as zeros, so they add nothing (the release '
                    'takes no prompt on the target)'
                )
    if target.instance_branch:
        for key in INSTANCE_BRANCH:
            report.not_in_release[key] = (
                'instance branch (Hungarian-matched instance masks): receives nothing and keeps its '
                'initialisation until trained (configs/omnisegnet/omnisegnet_swinb_release_instance.py)'
            )
    return converted, report


def to_official(state_dict: Mapping[str, Tensor]) -> 'OrderedDict[str, Tensor]':
    """State dict of ours -> the release's names, layouts and shapes.

    Only keys with a published counterpart come back: ours-only parameters are left out,
    and the release's unused parameters are not recreated.

    Args:
        state_dict (Mapping[str, Tensor]): A state dict of ``configs/omnisegnet_swinb.py``'s model.

    Returns:
        OrderedDict: Official key -> tensor.
    """
    rules = _rules(to_ours=False)
    official = OrderedDict()
    for key, value in state_dict.items():
        renamed = _apply(rules, key)
        if renamed is not None:
            new_key, transform = renamed
            official[new_key] = transform(value)
        elif SWIN_OURS.fullmatch(key):
            new_key, new_value = _swin_to_official(key, value)
            official[new_key] = new_value
    return official


def load_official(path: str) -> Dict[str, Tensor]:
    """The state dict of a released file (``{'model': state_dict, ...}`` or a bare state dict),
    read as every checkpoint is (``omniris_mm.engine.load_checkpoint_file``: ``weights_only=True``
    unless ``OMNIRIS_MM_TRUST_CHECKPOINTS=1``)."""
    checkpoint = load_checkpoint_file(path, map_location='cpu')
    return checkpoint['model'] if 'model' in checkpoint else checkpoint


def main(argv: Optional[List[str]] = None) -> ConversionReport:
    parser = argparse.ArgumentParser(description='Convert the published OmniSegNet checkpoint to omniris_mm')
    parser.add_argument('src', help='released checkpoint (a dict with the state dict under "model")')
    parser.add_argument('dst', help='output checkpoint for load_from / load_checkpoint')
    parser.add_argument(
        '--config',
        default=RELEASE_CONFIG,
        help="config the checkpoint is for (default: the release config, whose forward is the release's)",
    )
    args = parser.parse_args(argv)
    state_dict, report = convert(load_official(args.src), load_model_cfg(args.config))
    meta = dict(
        converted_from=osp.basename(args.src),
        converter=osp.basename(__file__),
        config=osp.relpath(osp.abspath(args.config), REPO),
        num_mapped=len(report.mapped),
        unmapped=list(report.unmapped),
        not_in_release=list(report.not_in_release),
        release_differences=list(report.differences),
    )
    torch.save({'state_dict': state_dict, 'meta': meta}, args.dst)
    print(f'{args.src} -> {args.dst}\n{report.summary()}')
    return report


if __name__ == '__main__':
    main()
