from typing import List

from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.registry import MODELS
from mmengine.model.utils import stack_batch
from torch import Tensor


@MODELS.register_module()
class OmniDataPreprocessor(DetDataPreprocessor):
    """mmdet's ``DetDataPreprocessor`` for the target images, plus the references.

    Reference images of the whole batch (any number per sample, any sizes) are
    normalised like the targets and padded together to one size divisible by
    ``pad_size_divisor``; their prompt maps are padded with 0. Each data sample
    gets its slice: ``ref_inputs`` (K, 3, H, W) and ``ref_prompt_maps``
    (K, 1, H, W) (K = 0 for a text-only sample).

    Defaults suit OmniSegNet: RGB, ImageNet mean/std, pad to 32, instance masks
    padded with 0 and the union map with 255 (ignored by the losses).
    """

    def __init__(
        self,
        mean=(123.675, 116.28, 103.53),
        std=(58.395, 57.12, 57.375),
        bgr_to_rgb: bool = True,
        pad_size_divisor: int = 32,
        pad_mask: bool = True,
        pad_seg: bool = True,
        seg_pad_value: int = 255,
        **kwargs,
    ):
        super().__init__(
            mean=mean,
            std=std,
            bgr_to_rgb=bgr_to_rgb,
            pad_size_divisor=pad_size_divisor,
            pad_mask=pad_mask,
            pad_seg=pad_seg,
            seg_pad_value=seg_pad_value,
            **kwargs,
        )

    def forward(self, data: dict, training: bool = False) -> dict:
        data = super().forward(data, training)
        samples = data['data_samples']
        refs: List[Tensor] = [img for s in samples for img in getattr(s, 'ref_imgs', [])]
        maps: List[Tensor] = [m for s in samples for m in getattr(s, 'prompt_maps', [])]
        if len(refs) != len(maps):
            raise ValueError('every reference image needs its prompt map')
        if not refs:
            for s in samples:
                s.ref_inputs = data['inputs'].new_zeros((0, 3) + data['inputs'].shape[-2:])
                s.ref_prompt_maps = data['inputs'].new_zeros((0, 1) + data['inputs'].shape[-2:])
            return data
        refs = [self._normalize(img.to(self.device)) for img in refs]
        ref_batch = stack_batch(refs, self.pad_size_divisor, self.pad_value)
        map_batch = stack_batch([m.to(self.device).float() for m in maps], self.pad_size_divisor, 0)
        start = 0
        for s in samples:
            k = len(getattr(s, 'ref_imgs', []))
            s.ref_inputs, s.ref_prompt_maps = ref_batch[start : start + k], map_batch[start : start + k]
            start += k
        return data

    def _normalize(self, img: Tensor) -> Tensor:
        if self._channel_conversion and img.shape[0] == 3:
            img = img[[2, 1, 0], ...]
        img = img.float()
        if self._enable_normalize:
            img = (img - self.mean) / self.std
        return img
