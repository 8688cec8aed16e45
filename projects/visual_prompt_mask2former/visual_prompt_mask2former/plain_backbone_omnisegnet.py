from typing import List

from mmdet.registry import MODELS
from torch import Tensor

from omniris_mm.models.detectors import OmniSegNet


@MODELS.register_module()
class PlainBackboneOmniSegNet(OmniSegNet):
    """OmniSegNet on a stock MMDetection backbone, without early fusion.

    Why it exists: :class:`OmniSegNet` fuses the prompt tokens into the target
    features inside its backbone (``backbone(images, prompt_tokens,
    prompt_mask)``, a ``PromptFusedSwin``). A stock backbone such as Mask2Former's
    ``ResNet`` takes only images, so this subclass runs the target image through
    it exactly like the reference images. The prompt then conditions the
    segmentation in the ``AdaptiveMaskHead`` alone (prompt cross-attention in its
    first decoder layer, the no-target and minimap outputs), and the backbone's
    weights keep the key names (``backbone.*``) of the stock detector, so a stock
    Mask2Former checkpoint loads into it.

    Args:
        Those of :class:`OmniSegNet`; ``backbone`` is any image-only backbone
        whose ``out_indices`` give strides 4, 8, 16 and 32.
    """

    def extract_feat(self, batch_inputs: Tensor, prompt_tokens: Tensor, prompt_mask: Tensor) -> List[Tensor]:
        """Target images (B, 3, H, W) -> backbone maps at strides 4 to 32; the prompts are not used here."""
        return list(self.backbone(batch_inputs))
