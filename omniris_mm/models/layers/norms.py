import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of each pixel of a (B, C, H, W) map.

    Neither mmcv nor mmdet ships one (mmcv's norms are batch/group/instance norms).
    """

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps).permute(
            0, 3, 1, 2
        )
