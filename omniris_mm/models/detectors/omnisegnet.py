from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmdet.models.detectors import BaseDetector
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.dist import all_reduce, is_distributed
from mmengine.logging import MessageHub, print_log
from mmengine.structures import InstanceData, PixelData
from torch import Tensor

from ...structures import (
    BATCH_INFO_KEY,
    NEGATIVE_EXEMPLAR_TYPES,
    NEGATIVE_PROMPT_TYPES,
    TARGET_PROMPT_TYPES,
    VISUAL_PROMPT_TYPES,
)
from ..layers.pooling import max_pool_to

# One row of the prompt-type embedding each; new types are only ever appended (older
# checkpoints hold the leading rows, see ``_load_from_state_dict``).
PROMPT_TYPES = ('text',) + VISUAL_PROMPT_TYPES + TARGET_PROMPT_TYPES + NEGATIVE_EXEMPLAR_TYPES


@MODELS.register_module()
class OmniSegNet(BaseDetector):
    """OmniSegNet: segment what a text and/or visual prompts refer to.

    Reads like the figure:

    1. prompts -> tokens: the text encoder embeds the expression (LayerNorm on
       top); each reference image goes through the backbone *without* fusion and
       the prompt-embedding neck turns it and its prompt map into visual tokens
       in the same space. A learned embedding of the prompt type (text, mask,
       box, scribble on a reference; click, negative click, box, scribble on the
       target itself) is added to each token (``prompt_type_embed``). A prompt on
       the target is a reference that is the target image: it goes the same way.
    2. ``fusion='concat'`` (ours): all tokens of a sample form one prompt
       sequence, segmented in one pass. ``fusion='union'`` (the published
       system): each prompt is segmented on its own and the masks are OR-ed
       (no target only if every prompt says so).
    3. the target image goes through the backbone, which fuses the prompt
       sequence after every stage;
    4. the adaptive mask head decodes the union mask, the no-target decision and
       the instance masks.

    A data sample may carry ``visual_tokens`` (K, num_queries, D) computed before
    by :meth:`encode_references`: its reference images are then not encoded
    again (one reference serving many targets).

    Args:
        backbone (dict): Prompt-fused backbone (``PromptFusedSwin``).
        text_encoder (dict, optional): Text encoder (``HFTextEncoder``). None
            builds a visual-prompt-only model (``prompt_dims`` then sets the
            token width); a text prompt is then an error.
        prompt_encoder (dict): Prompt-embedding neck (``OmniPromptEncoder``).
        head (dict): ``AdaptiveMaskHead``.
        fusion (str): ``'concat'`` or ``'union'``.
        data_preprocessor (dict): ``OmniDataPreprocessor``.
        prompt_dims (int, optional): Width of the prompt tokens without a text
            encoder (with one, its width).
        prompt_type_embed (bool): Add the prompt-type embeddings (ours: they tell
            the prompts of one sequence apart); the release has none.
        train_only (Sequence[str], optional): Train only the parameters whose
            names start with one of these prefixes (e.g. ``('head.objectness',
            'head.instance_embed')``, the instance branch on top of the released
            weights); every other parameter is frozen and every module holding
            only frozen parameters stays in eval mode, so the frozen path computes
            exactly what it computes at test time. None trains what the
            components leave trainable.
        compile_modules (Sequence[str], optional): Submodules to compile with
            ``torch.compile`` (in place, ``nn.Module.compile``: their state-dict keys
            do not change), by dotted name, e.g. ``('backbone', 'head.pixel_decoder',
            'prompt_encoder')``. Compilation happens at the first call of each and again
            for each new input size (the reference pass of the backbone, without
            prompts, is a graph of its own). On the 2-core CPU at 480 x 480 this made
            the text path 0.75x eager after about 170 s of compilation
            (``tools/analysis_tools/benchmark.py`` times it as ``CASE-compiled``):
            worth it for many images of one size, not for a few.
        target_maps (bool): Add the prompt maps drawn on the target itself (clicks,
            boxes, scribbles; negative clicks in a channel of their own) to the
            target's features at every level, by a zero-initialised 1 x 1
            convolution of their max-pooled maps, as SAM adds its dense prompt
            embedding to the image embedding. A prompt on the target means one
            object *there*; its tokens (pooled from the region) say what it looks
            like, not where it is, so without the maps the model answers the
            object's kind. No effect on samples without such prompts, and none at
            initialisation (a checkpoint without these weights loads them as zeros).
        compile_cfg (dict, optional): Keyword arguments of ``torch.compile``
            (``mode``, ``dynamic``, ``backend``, ...).
    """

    def __init__(
        self,
        backbone: ConfigType,
        text_encoder: OptConfigType,
        prompt_encoder: ConfigType,
        head: ConfigType,
        fusion: str = 'concat',
        data_preprocessor: OptConfigType = None,
        train_cfg: OptConfigType = None,
        test_cfg: OptConfigType = None,
        init_cfg: OptMultiConfig = None,
        prompt_dims: Optional[int] = None,
        prompt_type_embed: bool = True,
        train_only: Optional[Sequence[str]] = None,
        compile_modules: Optional[Sequence[str]] = None,
        compile_cfg: Optional[dict] = None,
        target_maps: bool = False,
    ):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if fusion not in ('concat', 'union'):
            raise ValueError(f"fusion must be 'concat' or 'union', got {fusion!r}")
        self.fusion = fusion
        self.backbone = MODELS.build(backbone)
        self.text_encoder = self.text_norm = None
        if text_encoder is not None:
            self.text_encoder = MODELS.build(text_encoder)
            if prompt_dims not in (None, self.text_encoder.embed_dims):
                raise ValueError(
                    f'prompt_dims ({prompt_dims}) must equal the text encoder width ({self.text_encoder.embed_dims})'
                )
            prompt_dims = self.text_encoder.embed_dims
            self.text_norm = nn.LayerNorm(prompt_dims)
        elif prompt_dims is None:
            raise ValueError('without a text_encoder, prompt_dims must give the width of the prompt tokens')
        self.prompt_encoder = MODELS.build(prompt_encoder)
        if self.prompt_encoder.out_proj.out_features != prompt_dims:
            raise ValueError(
                f'prompt_encoder.out_dims ({self.prompt_encoder.out_proj.out_features}) must equal the '
                f'prompt token width ({prompt_dims}: the text encoder width or prompt_dims)'
            )
        self.prompt_type_embed = nn.Embedding(len(PROMPT_TYPES), prompt_dims) if prompt_type_embed else None
        self.head = MODELS.build(head)
        self.target_map_embed = None
        if target_maps:
            channels = [self.backbone.num_features[i] for i in self.backbone.out_indices]
            with torch.random.fork_rng():  # built aside: the other modules' initialisation stays as it was
                self.target_map_embed = nn.ModuleList(nn.Conv2d(2, c, 1) for c in channels)
            for conv in self.target_map_embed:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
        self.train_only = tuple(train_only) if train_only is not None else None
        if self.train_only is not None:
            names = [n for n, _ in self.named_parameters()]
            unknown = [p for p in self.train_only if not any(n.startswith(p) for n in names)]
            if unknown:
                raise ValueError(f'train_only: no parameter of the model starts with {unknown}')
            for name, param in self.named_parameters():
                param.requires_grad_(name.startswith(self.train_only))
        self.compile_modules = tuple(compile_modules or ())
        modules = dict(self.named_modules())
        unknown = [name for name in self.compile_modules if name not in modules]
        if unknown:
            raise ValueError(f'compile_modules: the model has no submodule {unknown}')
        for name in self.compile_modules:
            modules[name].compile(**(compile_cfg or {}))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A checkpoint from before the prompts on the target holds the first 4 rows
        # (text, mask, box, scribble): keep them, the new types keep their initialisation.
        key = prefix + 'prompt_type_embed.weight'
        stored = state_dict.get(key)
        table = self.prompt_type_embed.weight if self.prompt_type_embed is not None else None
        if stored is not None and table is not None and stored.ndim == 2 and stored.shape[1] == table.shape[1]:
            if stored.shape[0] < len(PROMPT_TYPES):
                full = table.detach().clone()
                full[: stored.shape[0]] = stored.to(full)
                state_dict[key] = full
                print_log(
                    f'{key}: the checkpoint has {stored.shape[0]} prompt types, this model {len(PROMPT_TYPES)} '
                    f'({", ".join(PROMPT_TYPES[stored.shape[0] :])} keep their initialisation)',
                    logger='current',
                    level=30,
                )
        has_maps = any(k.startswith(prefix + 'target_map_embed.') for k in state_dict)
        if self.target_map_embed is not None and not has_maps:
            # A checkpoint from before the target maps: they start at zero (no effect), as at initialisation.
            for name, value in self.target_map_embed.state_dict().items():
                state_dict[f'{prefix}target_map_embed.{name}'] = torch.zeros_like(value)
            print_log(f'{prefix}target_map_embed: not in the checkpoint, starts at zero', logger='current', level=30)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode and self.train_only is not None:
            for module in self.modules():
                params = list(module.parameters())
                if params and not any(p.requires_grad for p in params):
                    module.eval()
        return self

    # -- prompts ---------------------------------------------------------------------
    def encode_references(self, ref_inputs: Tensor, ref_prompt_maps: Tensor) -> Tensor:
        """Reference images (N, 3, H, W) and prompt maps (N, 1, H, W) -> visual tokens (N, Nq, D).

        Outside training, an image given several times (the positive and the negative clicks on one
        target are two prompts on the same image) goes through the backbone once; each of its
        prompts is still encoded on its own. Training passes every reference (the batch, and so the
        arithmetic, of the runs measured so far)."""
        if not (self.training or len(ref_inputs) < 2 or torch.jit.is_tracing() or torch.compiler.is_compiling()):
            first, index = _distinct_images(ref_inputs)
            if len(first) < len(ref_inputs):
                feats = [f[index] for f in self.backbone(ref_inputs[first])]
                return self.prompt_encoder(feats, ref_prompt_maps)
        return self.prompt_encoder(self.backbone(ref_inputs), ref_prompt_maps)

    def encode_prompts(self, batch_data_samples: SampleList) -> List[List[Tuple[Tensor, Tensor]]]:
        """Per sample, each of its prompts (text first) as ``(tokens (n, D), valid (n,) bool)``
        with its prompt-type embedding added (see :meth:`prompt_sequences`)."""
        return [[(self._add_type(t, k), v) for t, v, k in seqs] for seqs in self.prompt_sequences(batch_data_samples)]

    def encode_text(self, texts: List[str]) -> Tuple[Tensor, Tensor]:
        """Texts -> normalised tokens (B, L, D) and their valid mask (B, L)."""
        tokens, mask = self.text_encoder(texts)
        return self.text_norm(tokens), mask

    def prompt_sequences(
        self, batch_data_samples: SampleList, encode_text=None, encode_references=None
    ) -> List[List[Tuple[Tensor, Tensor, str]]]:
        """Per sample, each of its prompts (text first) as ``(tokens (n, D), valid (n,) bool, type)``,
        before the prompt-type embeddings.

        A text keeps the padding positions the text encoder returns (all of them
        invalid): the backbone's fusion never attends to them, the head's prompt
        attention does when ``mask_prompt_padding=False`` (the release).
        ``encode_text`` / ``encode_references`` replace :meth:`encode_text` /
        :meth:`encode_references` (the ONNX Runtime runner passes its graphs).
        """
        encode_text = encode_text or self.encode_text
        encode_references = encode_references or self.encode_references
        texts = [s.metainfo.get('text') for s in batch_data_samples]
        with_text = [i for i, t in enumerate(texts) if t]
        text_tokens = {}
        if with_text and self.text_encoder is None:
            raise ValueError(
                f'sample {batch_data_samples[with_text[0]].metainfo.get("img_path")} has the text prompt '
                f'{texts[with_text[0]]!r}, but this model has no text encoder (text_encoder=None)'
            )
        if with_text:
            tokens, mask = encode_text([texts[i] for i in with_text])
            text_tokens = {i: (tokens[j], mask[j]) for j, i in enumerate(with_text)}
        to_encode = [s for s in batch_data_samples if 'visual_tokens' not in s and len(s.ref_inputs)]
        encoded = iter(())
        if to_encode:
            all_tokens = encode_references(
                torch.cat([s.ref_inputs for s in to_encode]), torch.cat([s.ref_prompt_maps for s in to_encode])
            )
            encoded = iter(all_tokens)
        prompts = []
        for i, sample in enumerate(batch_data_samples):
            types = list(sample.metainfo.get('prompt_types', []))
            visual_types = types[1:] if texts[i] else types
            negative = sorted(set(types) & set(NEGATIVE_PROMPT_TYPES))
            if negative and self.fusion == 'union':
                raise ValueError(
                    f"sample {sample.metainfo.get('img_path')}: fusion='union' answers each prompt on its own and "
                    f'ORs the answers, so a negative prompt ({", ".join(negative)}) cannot take away from them; '
                    "use fusion='concat'"
                )
            seqs = [(text_tokens[i][0], text_tokens[i][1], 'text')] if texts[i] else []
            if 'visual_tokens' in sample:
                visual = list(sample.visual_tokens)
            else:
                visual = [next(encoded) for _ in range(len(sample.ref_inputs))]
            if len(visual) != len(visual_types):
                raise ValueError(
                    f'sample {sample.metainfo.get("img_path")}: {len(visual)} visual prompts but prompt_types {types}'
                )
            seqs += [(tok, tok.new_ones(len(tok), dtype=torch.bool), t) for tok, t in zip(visual, visual_types)]
            if not seqs:
                raise ValueError(f'sample {sample.metainfo.get("img_path")} has no prompt')
            prompts.append(seqs)
        return prompts

    def _add_type(self, tokens: Tensor, prompt_type: str) -> Tensor:
        if self.prompt_type_embed is None:
            if prompt_type in NEGATIVE_PROMPT_TYPES:
                raise ValueError(
                    f'a {prompt_type!r} prompt needs the prompt-type embeddings (prompt_type_embed=True): '
                    'without them it reads as a positive prompt'
                )
            return tokens
        if prompt_type not in PROMPT_TYPES:
            raise ValueError(f'unknown prompt type {prompt_type!r}; known: {PROMPT_TYPES}')
        return tokens + self.prompt_type_embed.weight[PROMPT_TYPES.index(prompt_type)]

    def _prompt_rows(self, prompts: List[List[Tuple[Tensor, ...]]]) -> Tuple[Tensor, Tensor, List[int]]:
        """Pad the prompt sequences into (R, L, D) tokens and a (R, L) valid mask.

        One row per sample (``concat``) or per prompt (``union``); returns the
        sample index of each row. A prompt may carry more per-token parts after
        ``(tokens, valid)``; each is padded with zeros and returned before the owners.
        """
        if self.fusion == 'concat':
            rows = [tuple(torch.cat(parts) for parts in zip(*p)) for p in prompts]
            owners = list(range(len(prompts)))
        else:
            rows = [tv for p in prompts for tv in p]
            owners = [i for i, p in enumerate(prompts) for _ in p]
        length = max(len(r[0]) for r in rows)
        padded = [part.new_zeros((len(rows), length) + part.shape[1:]) for part in rows[0]]
        for j, row in enumerate(rows):
            for out, part in zip(padded, row):
                out[j, : len(part)] = part
        return (*padded, owners)

    def _add_target_maps(self, feats: List[Tensor], inputs: Tensor, samples: SampleList, owners: List[int]):
        """``feats`` of the (padded) target ``inputs`` plus the embedded maps of the prompts on
        the target (``target_maps``)."""
        if self.target_map_embed is None:
            return feats
        return self.apply_target_maps(feats, self.target_prompt_maps(inputs, samples, owners))

    def target_prompt_maps(self, inputs: Tensor, samples: SampleList, owners: List[int]) -> Optional[Tensor]:
        """(R, 2, H, W) maps of the positive / negative prompts on the target per prompt row, at the
        padded input size; None when no row has such a prompt. (The features take them with
        ``target_maps``; the head's ``one_object_select='prompts'`` answers with them either way.)"""
        pad_h, pad_w = inputs.shape[-2:]
        maps = inputs.new_zeros((len(owners), 2, pad_h, pad_w))
        drawn = False
        for row, o in enumerate(owners):
            sample = samples[o]
            types = [t for t in sample.metainfo.get('prompt_types', []) if t != 'text']
            for t, m in zip(types, sample.get('prompt_maps', [])):
                if t not in TARGET_PROMPT_TYPES:
                    continue
                h, w = m.shape[-2:]
                if (h, w) != tuple(sample.metainfo.get('img_shape', (h, w))[:2]):
                    raise ValueError(
                        f'sample {sample.metainfo.get("img_path")}: a {t!r} prompt map is {(h, w)} but the target '
                        f'image is {tuple(sample.metainfo["img_shape"][:2])}'
                    )
                ch = 1 if t in NEGATIVE_PROMPT_TYPES else 0
                maps[row, ch, :h, :w] = torch.maximum(maps[row, ch, :h, :w], (m[0] > 0).to(maps))
                drawn = True
        return maps if drawn else None

    def apply_target_maps(self, feats: List[Tensor], maps: Optional[Tensor]) -> List[Tensor]:
        if maps is None or self.target_map_embed is None:
            return feats
        return [f + conv(max_pool_to(maps, f.shape[-2:])) for f, conv in zip(feats, self.target_map_embed)]

    # -- the three modes ---------------------------------------------------------------
    def extract_feat(self, batch_inputs: Tensor, prompt_tokens: Tensor, prompt_mask: Tensor) -> List[Tensor]:
        return self.backbone(batch_inputs, prompt_tokens, prompt_mask)

    def loss(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Dict[str, Tensor]:
        # Named in the error if this batch's loss is not finite (GuardedOptimWrapper).
        MessageHub.get_current_instance().update_info(
            BATCH_INFO_KEY, [s.metainfo.get('record_id', s.metainfo.get('img_path')) for s in batch_data_samples]
        )
        prompts = self.encode_prompts(batch_data_samples)
        if self.fusion == 'union' and any(len(p) > 1 for p in prompts):
            raise ValueError(
                "fusion='union' trains on single-prompt samples only (the published setting); "
                "use fusion='concat' for samples with several prompts"
            )
        tokens, mask, owners = self._prompt_rows(prompts)
        feats = self.extract_feat(batch_inputs, tokens, mask)
        feats = self._add_target_maps(feats, batch_inputs, batch_data_samples, owners)
        return self.head.loss(feats, tokens, mask, batch_data_samples)

    def parse_losses(self, losses: Dict[str, Tensor]) -> Tuple[Tensor, Dict[str, Tensor]]:
        """mmengine's, with the logged values averaged over the ranks: the log then shows
        the loss of the whole global batch, not rank 0's share (the loss that is
        back-propagated is untouched)."""
        loss, log_vars = super().parse_losses(losses)
        if is_distributed() and log_vars:
            values = torch.stack([v.detach().float() for v in log_vars.values()])
            all_reduce(values, op='mean')  # in place
            log_vars = OrderedDict(zip(log_vars, values))
        return loss, log_vars

    def val_step(self, data) -> list:
        # A batch whose samples were all skipped (omni_collate, on_invalid='skip') has nothing to predict.
        return [] if isinstance(data, dict) and not len(data.get('inputs', ())) else super().val_step(data)

    def test_step(self, data) -> list:
        return [] if isinstance(data, dict) and not len(data.get('inputs', ())) else super().test_step(data)

    def predict(self, batch_inputs: Tensor, batch_data_samples: SampleList, rescale: bool = True) -> SampleList:
        """Fills ``pred_sem_seg`` (union mask), ``pred_no_target`` and
        ``pred_instances`` (masks, scores, labels) of each data sample."""
        tokens, mask, owners = self._prompt_rows(self.encode_prompts(batch_data_samples))
        feats = self.extract_feat(batch_inputs[owners], tokens, mask)
        maps = self.target_prompt_maps(batch_inputs, batch_data_samples, owners)
        feats = self.apply_target_maps(feats, maps)
        metas = [batch_data_samples[o].metainfo for o in owners]
        results = self.head.predict(feats, tokens, mask, metas, rescale=rescale, target_maps=maps)
        return self.collect(results, owners, batch_data_samples)

    @staticmethod
    def collect(results: List[dict], owners: List[int], batch_data_samples: SampleList) -> SampleList:
        """The head's answers per prompt row into each sample's ``pred_*`` fields (rows of one
        sample, as ``fusion='union'`` makes them, OR-ed)."""
        for i, sample in enumerate(batch_data_samples):
            mine = [r for r, o in zip(results, owners) if o == i]
            sem_seg = torch.stack([r['sem_seg'] for r in mine]).amax(0)
            no_target = all(r['no_target'] for r in mine)
            sample.pred_sem_seg = PixelData(sem_seg=sem_seg)
            sample.pred_no_target = no_target
            sample.pred_no_target_score = min(r['no_target_score'] for r in mine)
            masks = torch.cat([r['masks'] for r in mine])
            scores = torch.cat([r['scores'] for r in mine])
            sample.pred_instances = InstanceData(
                masks=masks, scores=scores, labels=scores.new_zeros(len(scores), dtype=torch.long)
            )
        return batch_data_samples

    def _forward(self, batch_inputs: Tensor, batch_data_samples: SampleList) -> Dict[str, Tensor]:
        tokens, mask, owners = self._prompt_rows(self.encode_prompts(batch_data_samples))
        feats = self.extract_feat(batch_inputs[owners], tokens, mask)
        feats = self._add_target_maps(feats, batch_inputs, batch_data_samples, owners)
        return self.head(feats, tokens, mask)


def _distinct_images(images: Tensor) -> Tuple[Tensor, Tensor]:
    """``(first, index)``: the positions of the distinct images of ``images`` (N, ...), in order, and for
    each image the position in ``first`` of its equal. Images are compared exactly, after a cheap key
    (their sum) has paired the candidates."""
    flat = images.flatten(1)
    keys = flat.sum(1).tolist()
    first, index, seen = [], [], {}
    for i, key in enumerate(keys):
        for j in seen.get(key, ()):
            if torch.equal(flat[i], flat[first[j]]):
                index.append(j)
                break
        else:
            seen.setdefault(key, []).append(len(first))
            index.append(len(first))
            first.append(i)
    return torch.tensor(first, device=images.device), torch.tensor(index, device=images.device)
