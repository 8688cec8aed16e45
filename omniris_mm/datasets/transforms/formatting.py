import numpy as np
import torch
from mmcv.transforms import to_tensor
from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS
from mmengine.structures import PixelData

from ..utils import IGNORE_INDEX, OmniDataError

_REF_META_KEYS = (
    'img_path',
    'img_id',
    'ann_id',
    'category_id',
    'prompt_type',
    'on_target',
    'clicks',
    'shot',
    'negative',
    'ori_shape',
    'img_shape',
    'flip',
    'flip_direction',
    'scale_factor',
)


def _chw(img: np.ndarray):
    img = img[..., None] if img.ndim == 2 else img
    return to_tensor(np.ascontiguousarray(img.transpose(2, 0, 1)))


@TRANSFORMS.register_module()
class PackOmniInputs(PackDetInputs):
    """Pack an OmniRIS sample into ``inputs`` and a ``DetDataSample``.

    On top of mmdet's packing:

    - ``gt_sem_seg``: the union of the referred masks (1, H, W), at the size the
      masks have (the original size when annotations are loaded after resizing);
      crowd regions (``gt_ignore_flags``) outside it are void (``ignore_index``, 255).
    - ``gt_instances.ann_ids``: the referred annotation ids.
    - ``gt_no_target`` (bool) as a data field.
    - ``ref_imgs``: a list with one (3, h, w) uint8 tensor per visual prompt, and
      ``prompt_maps``: one (1, h, w) uint8 map per visual prompt, in the same order,
      and ``ref_masks``: the reference instance mask each prompt map was drawn from.
    - metainfo ``text`` (raw string; tokenising is the model's job),
      ``prompt_modality``, ``prompt_types`` (``'text'`` first if there is a text,
      then the type of each visual prompt, ``'neg_'`` + it for a negative
      exemplar), ``setting``, ``granularity`` (where the dataset gives one: RefCOCOm) and
      ``ref_metas``; ``prompt_notes`` where an inference request's prompts were changed (a
      box clipped to its image).
    """

    mapping_table = {**PackDetInputs.mapping_table, 'gt_ann_ids': 'ann_ids'}

    def __init__(
        self,
        meta_keys=(
            'img_id',
            'img_path',
            'ori_shape',
            'img_shape',
            'scale_factor',
            'flip',
            'flip_direction',
            'text',
            'prompt_modality',
            'prompt_types',
            'setting',
            'granularity',
            'record_id',
            'sample_idx',
            'ref_metas',
            'prompt_notes',
        ),
    ):
        super().__init__(meta_keys=meta_keys)

    def transform(self, results: dict) -> dict:
        prompts = results.get('visual_prompts', [])
        missing = [i for i, p in enumerate(prompts) if 'prompt_map' not in p]
        if missing:
            raise OmniDataError(
                f'{results.get("record_id")}: visual prompt(s) {missing} have no prompt map; '
                'put LoadVisualPrompts and SynthesizePromptMaps in the pipeline'
            )
        results['prompt_types'] = (['text'] if results.get('text') else []) + [
            f'neg_{p["prompt_type"]}' if p.get('negative') else p['prompt_type'] for p in prompts
        ]
        results['ref_metas'] = [{k: p[k] for k in _REF_META_KEYS if k in p} for p in prompts]
        no_target = bool(results.get('gt_no_target', False))
        if 'gt_masks' in results:
            masks = results['gt_masks']
            ignored = results.get('gt_ignore_flags', np.zeros(len(masks), bool)).astype(bool)
            union = np.zeros((masks.height, masks.width), bool)
            void = np.zeros_like(union)
            if len(masks):
                union = masks.masks[~ignored].any(0) if (~ignored).any() else union
                void = masks.masks[ignored].any(0) if ignored.any() else void
            if union.any() == no_target:
                raise OmniDataError(
                    f'{results.get("record_id")}: the referred masks are '
                    f'{"not empty" if no_target else "empty"} but gt_no_target is {no_target}'
                )
            seg = union.astype(np.uint8)
            seg[void & ~union] = IGNORE_INDEX
            results['gt_seg_map'] = seg
        packed = super().transform(results)
        data_sample = packed['data_samples']
        if 'gt_masks' in results or 'gt_no_target' in results:
            data_sample.gt_no_target = no_target
        if 'gt_excluded' in results:
            data_sample.gt_excluded = PixelData(sem_seg=torch.from_numpy(results['gt_excluded'][None].copy()))
        data_sample.ref_imgs = [_chw(p['img']) for p in prompts]
        data_sample.prompt_maps = [_chw(p['prompt_map'].astype(np.uint8)) for p in prompts]
        data_sample.ref_masks = [_chw(p['ref_mask'].astype(np.uint8)) for p in prompts]
        return packed
