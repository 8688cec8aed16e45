from typing import Tuple

import torch.nn.functional as F
from torch import Tensor


def max_pool_to(maps: Tensor, size: Tuple[int, int]) -> Tensor:
    """Adaptive max pooling of ``maps`` (N, C, H, W) to ``size`` (h, w): the maximum over each
    output cell.

    Where H and W are multiples of h and w (a map at the padded input's size pooled to a feature's
    size: the data preprocessor pads to a multiple of the largest stride), this is a max pooling
    with the fixed kernel and stride H/h x W/w, the same numbers. That form keeps an exported ONNX
    graph valid for every image size (its kernel is the feature's stride, the same for all sizes),
    where ONNX takes adaptive pooling only with constant output sizes.
    """
    big_h, big_w = (int(d) for d in maps.shape[-2:])
    h, w = (int(d) for d in size)
    if big_h % h == 0 and big_w % w == 0:
        return F.max_pool2d(maps, (big_h // h, big_w // w))
    return F.adaptive_max_pool2d(maps, (h, w))
