from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.layers import MLP, SinePositionalEncoding
from mmdet.models.layers.matrix_nms import mask_matrix_nms
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptConfigType
from mmengine.model import BaseModule, ModuleList
from torch import Tensor

from ...structures import TARGET_PROMPT_TYPES
from ..layers.fast_attention import swap_modules
from .referring_decoder import ReferringDecoderLayer

TEST_CFG_DEFAULTS = dict(
    no_target_thr=0.5,
    instance_thr=0.5,
    mask_thr=0.5,
    empty_on_no_target=True,
    pred_size='original',
    instance_in_union=True,
    instance_min_inside=0.5,
    instance_nms=dict(kernel='gaussian', sigma=2.0),
    # Prompts on the target mean that one instance (issue 13): answered by one instance, the one
    # that agrees best with the prompts drawn on the target (ties within agreement_tol by score).
    one_object_types=TARGET_PROMPT_TYPES,
    one_object_select='prompts',
    agreement_tol=0.05,
)


@MODELS.register_module()
class AdaptiveMaskHead(BaseModule):
    """The adaptive mask head: mmdet's ``MSDeformAttnPixelDecoder`` and a ReLA-style
    referring decoder, with the published outputs and an instance branch.

    ``grid_size[0] * grid_size[1]`` region queries go through ``num_layers`` decoder
    layers (masked cross-attention to the pixel decoder's three coarsest maps in
    turn; prompt cross-attention in the first layer; self-attention; FFN). Outputs:

    - region masks, one per query (``mask_embed`` on the stride-4 mask features),
      serve as the next layer's attention mask (computed at the attention size).
    - ``minimap`` (B, 2, gh, gw): per-region target / background scores.
    - ``target_mask`` (B, 2, h, w): the merged mask, ``sum_q w_q x mask_embed_q``
      applied to the mask features, ``w_q`` the query's minimap scores
      (``minimap_merge``).
    - ``nt_logits`` (B, 2): no-target score, an MLP per query averaged.
    - ``objectness`` (B, Q, 2) and ``instance_embed`` (B, Q, C): the instance
      branch; ``instance_embed`` applied to ``mask_features`` (B, C, h, w) gives
      per-query instance masks. Trained by Hungarian matching so that the kept
      queries are the referred instances (none for a no-target prompt); at test
      time only the kept queries' masks are computed. Absent (not built) without
      an ``instance_criterion``: the answer is then the union mask alone.

    Losses live beside the head: ``referring_criterion`` (published mask, minimap
    and no-target losses) and ``instance_criterion`` (matching and instance losses;
    None disables the branch).

    Args:
        in_channels (Sequence[int]): Backbone channels, strides 4 to 32.
        strides (Sequence[int]): Backbone strides.
        feat_channels (int): Width of the pixel decoder and decoder.
        prompt_dims (int): Width of the prompt tokens.
        grid_size (tuple): Region grid (published 10 x 10 = 100 queries).
        grid_prior (bool): Tie query ``q`` to grid cell ``q`` (the cell the minimap
            loss scores it on): its position embedding adds the cell's sine position
            and the first layer attends only inside the cell. Default False, as
            published: measured with .dev_scripts/sweep_switches.py (commit
            e4e0dfe, tiny model, 2 seeds) the tie learnt from the minimap loss alone
            scored +6.8 quickstart gIoU and +26 N-acc over the prior (the comments of
            configs/_base_/models/omnisegnet_swinb.py).
        zero_init_prompt_attn (bool): Start the prompt cross-attention's output
            projection at zero (published; the decoder then starts prompt-blind).
            The visual tokens get their first gradients only through this
            attention and the backbone's fusion gates, which also start closed: a
            small model trained briefly from scratch may never open them for the
            visual prompts (measured on the quickstart's tiny model, 2,000
            iterations: visual gIoU 4.7 with it, 90 without), so the tiny configs
            turn it off.
        minimap_merge (str): Weights of the region masks in the merged mask:
            ``'softmax'`` (ours) the softmax of each query's two minimap logits,
            ``'logits'`` (the release) the raw logits.
        prompt_attn (str): The first layer's prompt attention, ``'replace'`` (ours)
            or ``'gated'`` (the release); see :class:`ReferringDecoderLayer`.
        mask_prompt_padding (bool): The prompt attention ignores the padding
            positions of the prompt sequence (ours); False attends to every
            position, text padding included (the release). Meant for
            ``fusion='union'`` with texts padded to ``max_tokens``, as released:
            every row then has the same length; rows padded to a common length
            (``'concat'``) would also attend to the zero tokens of the row padding.
        zero_init_prompt_proj (bool): Start the projection of the prompt tokens
            into the decoder width at zero (the release).
        num_layers, num_heads, ffn_dims, dropout: decoder layers.
        pixel_decoder (dict): mmdet pixel decoder config; channels and strides
            are filled from the arguments above.
        deform_attn (str): The pixel decoder's deformable attention on the CPU:
            ``'mmcv'`` mmcv's (``grid_sample`` per level), ``'gather'``
            :class:`GatherMSDeformAttn` (one ``embedding_bag``; equal to float
            rounding, faster). On CUDA both run mmcv's kernel.
        referring_criterion (dict): Published losses.
        instance_criterion (dict, optional): Instance branch losses.
        test_cfg (dict): ``no_target_thr`` (no-target probability above which the
            answer is "no target"), ``instance_thr`` (objectness to keep a query),
            ``mask_thr`` (instance mask probability), ``empty_on_no_target``
            (clear the union mask and the instances of a no-target answer; the
            release keeps its mask; few-shot configs, whose episodes always have a
            target, keep both),
            ``pred_size`` (``'original'``: masks at the original image size;
            ``'input'``: at the size the network saw, with no round trip through
            the original size, which the published 480 x 480 protocol scores),
            ``instance_in_union`` (cut each instance mask to the union answer and drop
            an instance that keeps less than ``instance_min_inside`` of its pixels
            there: the instances then partition what the union mask answers, and a
            stray outside it goes), ``instance_nms`` (None, or the keyword arguments
            of mmdet's ``mask_matrix_nms``: a duplicate's score decays by its overlap
            with a better-scored instance, and the decayed scores are thresholded at
            ``instance_thr`` again), ``one_object_types`` (prompt types that mean one
            object, by default the prompts on the target: a prompt row holding any of
            them answers one instance alone, as the union mask and the one instance,
            whatever ``instance_thr``; the union branch of a model trained mostly on
            referring prompts tends to answer the clicked object's kind, the instance
            branch the object. ``()``: every row answers its union mask),
            ``one_object_select`` (which instance such a row answers: ``'score'``, the
            best-scored; ``'prompts'``, the one whose mask agrees best with the prompts
            drawn on the target, among those within ``agreement_tol`` of the best
            agreement the best-scored: see :meth:`prompt_agreement`. A row without its
            maps, as from a caller that passes none, falls back to ``'score'``).
    """

    def __init__(
        self,
        in_channels: Sequence[int] = (128, 256, 512, 1024),
        strides: Sequence[int] = (4, 8, 16, 32),
        feat_channels: int = 256,
        prompt_dims: int = 768,
        grid_size: Tuple[int, int] = (10, 10),
        num_layers: int = 9,
        num_heads: int = 8,
        ffn_dims: int = 2048,
        dropout: float = 0.0,
        pixel_decoder: ConfigType = dict(type='MSDeformAttnPixelDecoder'),
        referring_criterion: ConfigType = dict(type='ReferringCriterion'),
        instance_criterion: OptConfigType = dict(type='InstanceCriterion'),
        grid_prior: bool = False,
        zero_init_prompt_attn: bool = True,
        minimap_merge: str = 'softmax',
        prompt_attn: str = 'replace',
        mask_prompt_padding: bool = True,
        zero_init_prompt_proj: bool = False,
        deform_attn: str = 'mmcv',
        test_cfg: OptConfigType = None,
        init_cfg=None,
    ):
        super().__init__(init_cfg=init_cfg)
        if minimap_merge not in ('softmax', 'logits'):
            raise ValueError(f"minimap_merge must be 'softmax' or 'logits', got {minimap_merge!r}")
        self.minimap_merge = minimap_merge
        self.mask_prompt_padding = mask_prompt_padding
        self.zero_init_prompt_proj = zero_init_prompt_proj
        pixel_decoder = dict(
            pixel_decoder,
            in_channels=list(in_channels),
            strides=list(strides),
            feat_channels=feat_channels,
            out_channels=feat_channels,
        )
        self.pixel_decoder = swap_modules(MODELS.build(pixel_decoder), deform_attn=deform_attn)
        self.num_levels = 3
        self.grid_size = tuple(grid_size)
        num_queries = grid_size[0] * grid_size[1]
        self.num_heads = num_heads
        self.positional_encoding = SinePositionalEncoding(num_feats=feat_channels // 2, normalize=True)
        self.level_embed = nn.Embedding(self.num_levels, feat_channels)
        self.query_feat = nn.Embedding(num_queries, feat_channels)
        self.query_pos = nn.Embedding(num_queries, feat_channels)
        self.grid_prior = grid_prior
        self.prompt_proj = nn.Linear(prompt_dims, feat_channels, bias=False)
        # mmengine's ModuleList, so that init_weights reaches the layers (zero prompt-attention output).
        self.layers = ModuleList(
            ReferringDecoderLayer(
                feat_channels,
                num_heads,
                ffn_dims,
                dropout,
                with_prompt_attn=(i == 0),
                zero_init_prompt_attn=zero_init_prompt_attn,
                prompt_attn_mode=prompt_attn,
            )
            for i in range(num_layers)
        )
        self.decoder_norm = nn.LayerNorm(feat_channels)
        self.mask_embed = MLP(feat_channels, feat_channels, feat_channels, 3)
        self.minimap_embed = nn.Linear(feat_channels, 2)
        self.nt_embed = MLP(feat_channels, feat_channels, 2, 2)
        self.referring_criterion = MODELS.build(referring_criterion)
        self.instance_criterion = None
        if instance_criterion:
            self.instance_criterion = MODELS.build(instance_criterion)
            self.objectness = nn.Linear(feat_channels, 2)
            # Instance masks get their own embedding: sharing the region masks (the attention
            # masks) with instance supervision slowed the referring mask down (measured).
            self.instance_embed = MLP(feat_channels, feat_channels, feat_channels, 3)
        self.test_cfg = {**TEST_CFG_DEFAULTS, **(test_cfg or {})}
        if self.test_cfg['pred_size'] not in ('original', 'input'):
            raise ValueError(f"test_cfg.pred_size must be 'original' or 'input', got {self.test_cfg['pred_size']!r}")
        if self.test_cfg['one_object_select'] not in ('score', 'prompts'):
            raise ValueError(
                f"test_cfg.one_object_select must be 'score' or 'prompts', got {self.test_cfg['one_object_select']!r}"
            )
        if not self.test_cfg['agreement_tol'] >= 0:
            raise ValueError(f'test_cfg.agreement_tol must be >= 0, got {self.test_cfg["agreement_tol"]!r}')

    def init_weights(self):
        super().init_weights()
        if self.zero_init_prompt_proj:
            nn.init.zeros_(self.prompt_proj.weight)

    def _attention_mask(self, query: Tensor, attn_features: Tensor) -> Tensor:
        """The next layer's attention mask: where each query's region mask is below 0.5.

        The region masks (``mask_embed`` applied to the stride-4 mask features) are
        computed directly on mask features already resized to the attention size:
        bilinear resizing commutes with the per-pixel linear map, so this equals
        resizing the full-resolution masks, at a fraction of the cost.
        """
        embed = self.mask_embed(self.decoder_norm(query))  # (B, Q, C)
        attn = torch.einsum('bqc,bchw->bqhw', embed, attn_features).flatten(2) < 0  # sigmoid < 0.5
        attn = attn & ~attn.all(-1, keepdim=True)  # a query that would see nothing sees everything
        return attn.repeat_interleave(self.num_heads, 0).detach()

    def _grid_pos(self, like: Tensor) -> Tensor:
        """(1, Q, C) sine position of each query's grid cell: the query's tie to its region."""
        grid = self.positional_encoding(like.new_zeros((1,) + self.grid_size, dtype=torch.bool))
        return grid.flatten(2).transpose(1, 2)

    def _region_attention_mask(self, b: int, size, device) -> Tensor:
        """The first layer's attention mask: each query sees only its own grid cell."""
        (gh, gw), (h, w) = self.grid_size, size
        rows = torch.arange(h, device=device) * gh // h
        cols = torch.arange(w, device=device) * gw // w
        cell = (rows[:, None] * gw + cols[None]).flatten()  # (HW,) cell index of each position
        attn = cell[None] != torch.arange(gh * gw, device=device)[:, None]  # (Q, HW) True = blocked
        attn = attn & ~attn.all(-1, keepdim=True)  # a cell smaller than one position: see everything
        return attn[None].expand(b * self.num_heads, -1, -1)

    def forward(self, feats: List[Tensor], prompt_tokens: Tensor, prompt_mask: Tensor) -> Dict[str, Tensor]:
        """feats: backbone maps (strides 4-32); prompt_tokens (B, L, D); prompt_mask (B, L) True = valid."""
        mask_features, multi_scale = self.pixel_decoder(feats)  # (B, C, H/4, W/4); 3 maps, coarse first
        b = mask_features.shape[0]
        memories, memory_pos, attn_features = [], [], []
        for i, feat in enumerate(multi_scale):
            pos = self.positional_encoding(feat.new_zeros((b,) + feat.shape[-2:], dtype=torch.bool))
            memories.append(feat.flatten(2).transpose(1, 2) + self.level_embed.weight[i])
            memory_pos.append(pos.flatten(2).transpose(1, 2))
            attn_features.append(F.interpolate(mask_features, feat.shape[-2:], mode='bilinear', align_corners=False))
        prompt_memory = self.prompt_proj(prompt_tokens)
        query = self.query_feat.weight[None].expand(b, -1, -1)
        query_pos = self.query_pos.weight[None].expand(b, -1, -1)
        if self.grid_prior:
            query_pos = query_pos + self._grid_pos(mask_features)
            attn = self._region_attention_mask(b, attn_features[0].shape[-2:], mask_features.device)
        else:
            attn = self._attention_mask(query, attn_features[0])
        prompt_padding = ~prompt_mask if self.mask_prompt_padding else None
        for i, layer in enumerate(self.layers):
            level = i % self.num_levels
            query = layer(query, query_pos, memories[level], memory_pos[level], attn, prompt_memory, prompt_padding)
            if i + 1 < len(self.layers):
                attn = self._attention_mask(query, attn_features[(i + 1) % self.num_levels])
        query = self.decoder_norm(query)
        minimap = self.minimap_embed(query)  # (B, Q, 2)
        weights = minimap.softmax(-1) if self.minimap_merge == 'softmax' else minimap
        target_embed = torch.einsum('bqk,bqc->bkc', weights, self.mask_embed(query))
        outputs = dict(
            minimap=minimap.transpose(1, 2).reshape(b, 2, *self.grid_size),
            target_mask=torch.einsum('bkc,bchw->bkhw', target_embed, mask_features),
            nt_logits=self.nt_embed(query).mean(1),
            mask_features=mask_features,
        )
        if self.instance_criterion is not None:
            outputs.update(objectness=self.objectness(query), instance_embed=self.instance_embed(query))
        return outputs

    def loss(
        self, feats: List[Tensor], prompt_tokens: Tensor, prompt_mask: Tensor, batch_data_samples: list
    ) -> Dict[str, Tensor]:
        outputs = self(feats, prompt_tokens, prompt_mask)
        losses = self.referring_criterion(outputs, batch_data_samples)
        if self.instance_criterion is not None:
            losses.update(self.instance_criterion(outputs, batch_data_samples))
        return losses

    def predict(
        self,
        feats: List[Tensor],
        prompt_tokens: Tensor,
        prompt_mask: Tensor,
        batch_img_metas: List[dict],
        rescale: bool = True,
        target_maps: Optional[Tensor] = None,
    ) -> List[dict]:
        """Per image: ``sem_seg`` (1, H, W) union mask, ``no_target`` (bool),
        ``no_target_score``, and instance ``masks`` (k, H, W) with ``scores`` (k,),
        at the original size when ``rescale`` and ``test_cfg.pred_size='original'``.
        ``target_maps``: (R, 2, H, W) positive / negative maps of the prompts drawn on each row's
        target at the padded input size (:meth:`OmniSegNet.target_prompt_maps`), or None."""
        return self.postprocess(self(feats, prompt_tokens, prompt_mask), batch_img_metas, rescale, target_maps)

    def postprocess(
        self,
        outputs: Dict[str, Tensor],
        batch_img_metas: List[dict],
        rescale: bool = True,
        target_maps: Optional[Tensor] = None,
    ) -> List[dict]:
        """:meth:`predict`'s answers from :meth:`forward`'s outputs (also those of an exported graph)."""
        cfg = self.test_cfg
        rescale = rescale and cfg['pred_size'] == 'original'
        results = []
        for i, meta in enumerate(batch_img_metas):
            nt_score = outputs['nt_logits'][i].softmax(-1)[1]
            no_target = bool(nt_score > cfg['no_target_thr'])
            logits = self._to_image(outputs['target_mask'][i : i + 1], meta, rescale)[0]
            sem_seg = self.union_mask(logits)
            if no_target and cfg['empty_on_no_target']:
                sem_seg.zero_()
            one_object = False
            if 'objectness' in outputs:
                scores = outputs['objectness'][i].softmax(-1)[:, 0]
                one_object = any(t in cfg['one_object_types'] for t in meta.get('prompt_types', ()))
                if one_object:  # one instance alone
                    best = scores.argmax()
                    if cfg['one_object_select'] == 'prompts' and target_maps is not None and target_maps[i].any():
                        agree = self.prompt_agreement(outputs, i, meta, target_maps[i])
                        best = torch.where(agree >= agree.max() - cfg['agreement_tol'], scores, -1.0).argmax()
                    keep = F.one_hot(best, len(scores)).bool()
                else:
                    keep = scores > cfg['instance_thr']
                # A "no target" answer clears the instances too, unless empty_on_no_target is off.
                keep &= not (no_target and cfg['empty_on_no_target'])
                scores, inst_embed = scores[keep], outputs['instance_embed'][i, keep]
            else:  # no instance branch: no instances
                scores = outputs['nt_logits'].new_zeros(0)
                inst_embed = outputs['mask_features'].new_zeros((0, outputs['mask_features'].shape[1]))
            inst = torch.einsum('qc,chw->qhw', inst_embed, outputs['mask_features'][i])
            masks = self._to_image(inst[None], meta, rescale)[0].sigmoid() > cfg['mask_thr']
            if one_object and len(masks):
                sem_seg = masks.to(torch.uint8)
            else:
                masks, scores = self.clean_instances(masks, scores, sem_seg[0].bool(), cfg)
            results.append(
                dict(sem_seg=sem_seg, no_target=no_target, no_target_score=float(nt_score), masks=masks, scores=scores)
            )
        return results

    @staticmethod
    def union_mask(logits: Tensor) -> Tensor:
        """(1, H, W) uint8 index of the larger of the background / target logits (K, H, W): their
        argmax over K, ties and NaNs as argmax takes them. Through ``max(0).indices``: torch 2.13's
        CPU ``argmax`` over the leading dimension takes a slow path, 3 ms at 128 x 128 and 64 ms at
        480 x 640 against 0.09 and 1.2 ms (2 threads), most of a quickstart click round's answer."""
        return logits.max(0, keepdim=True).indices.to(torch.uint8)

    def prompt_agreement(self, outputs: Dict[str, Tensor], i: int, meta: dict, maps: Tensor) -> Tensor:
        """(Q,) how well each instance mask of row ``i`` agrees with the prompts drawn on its target:
        ``maps`` (2, H, W) at the padded input size, positive then negative. The masks (at that size,
        ``mask_thr``) cover the positive pixels (their share; a row with a box: the mask's IoU with
        them, since a box's inside is not all object) and not the negative ones (times one less their
        covered share). A query's objectness is a guess at "is this an object"; only this says
        whether it is the object the user pointed at (a click on it, a box around it)."""
        pos, neg = (maps > 0).flatten(1).float()
        sums = []  # per query: mask area, positive and negative pixels covered
        # 16 queries at a time: all of them at the input size would hold Q x H x W floats at once.
        for embed in outputs['instance_embed'][i].split(16):
            inst = torch.einsum('qc,chw->qhw', embed, outputs['mask_features'][i])
            masks = F.interpolate(inst[None], tuple(maps.shape[-2:]), mode='bilinear', align_corners=False)[0]
            masks = (masks.sigmoid() > self.test_cfg['mask_thr']).flatten(1).float()
            sums.append(torch.stack([masks.sum(1), masks @ pos, masks @ neg], 1))
        area, inter, covered = torch.cat(sums).unbind(1)
        agree = torch.ones_like(area)
        if pos.any():
            if 'target_box' in meta.get('prompt_types', ()):
                agree = inter / (area + pos.sum() - inter).clamp(min=1)
            else:
                agree = inter / pos.sum()
        if neg.any():
            agree = agree * (1 - covered / neg.sum())
        return agree

    @staticmethod
    def clean_instances(masks: Tensor, scores: Tensor, union: Tensor, cfg: dict) -> Tuple[Tensor, Tensor]:
        """The kept instances (k, H, W) bool with their scores (k,) after ``test_cfg``'s
        ``instance_in_union`` and ``instance_nms``, ordered by score."""
        if cfg['instance_in_union'] and len(masks):
            area = masks.flatten(1).sum(1)
            masks = masks & union
            inside = masks.flatten(1).sum(1)
            keep = (inside > 0) & (inside >= cfg['instance_min_inside'] * area)
            masks, scores = masks[keep], scores[keep]
        if cfg['instance_nms'] is not None and len(masks):
            scores, _, masks, _ = mask_matrix_nms(
                masks, scores.new_zeros(len(scores), dtype=torch.long), scores, **cfg['instance_nms']
            )
            keep = scores > cfg['instance_thr']
            masks, scores = masks[keep], scores[keep]
        return masks, scores

    @staticmethod
    def _to_image(maps: Tensor, meta: dict, rescale: bool) -> Tensor:
        """Stride-4 maps (1, K, h, w) -> the input image size, unpadded, then the original size."""
        pad_h, pad_w = meta['batch_input_shape']
        h, w = meta['img_shape']
        if maps.shape[1] == 0:
            size = tuple(meta['ori_shape'][:2]) if rescale else (h, w)
            return maps.new_zeros(maps.shape[:2] + size)
        maps = F.interpolate(maps, (pad_h, pad_w), mode='bilinear', align_corners=False)[..., :h, :w]
        if rescale and tuple(meta['ori_shape'][:2]) != (h, w):
            maps = F.interpolate(maps, tuple(meta['ori_shape'][:2]), mode='bilinear', align_corners=False)
        return maps
