"""Outside training, a reference image given several times (positive and negative clicks on one target) goes
through the backbone once; the visual tokens are those of one backbone pass per reference."""

import torch
from model_utils import build_model

from omniris_mm.models.detectors.omnisegnet import _distinct_images


def references():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 64, 96, generator=g), torch.randn(3, 64, 96, generator=g)
    images = torch.stack([a, b, a, a.clone(), b])  # 2 distinct images, a given 3 times (one a copy)
    maps = (torch.rand(5, 1, 64, 96, generator=g) > 0.7).float()  # a different prompt on each
    return images, maps


def test_distinct_images_pairs_equal_images_only():
    images, _ = references()
    first, index = _distinct_images(images)
    assert first.tolist() == [0, 1] and index.tolist() == [0, 1, 0, 0, 1]
    near = images.clone()
    near[3, 0, 0, 0] += 1e-3  # one value off, and the same sum: not the same image
    near[3, 0, 0, 1] -= 1e-3
    first, index = _distinct_images(near)
    assert first.tolist() == [0, 1, 3] and index.tolist() == [0, 1, 0, 2, 1]


def test_each_distinct_reference_is_encoded_once_with_the_same_tokens():
    model = build_model().eval()
    images, maps = references()
    batches = []
    model.backbone.register_forward_hook(lambda m, args, out: batches.append(len(args[0])))
    with torch.no_grad():
        want = model.prompt_encoder(model.backbone(images), maps)  # one pass per reference
        assert batches == [5]
        got = model.encode_references(images, maps)
    assert batches == [5, 2]  # the two distinct images
    assert got.shape == want.shape
    # the same tokens up to the backbone's arithmetic on a batch of 2 instead of 5
    assert ((got - want).norm() / want.norm()).item() < 1e-5
    # each prompt still counts: the tokens of a's three prompts differ
    assert not torch.allclose(got[0], got[2]) and not torch.allclose(got[2], got[3])
    # in training every reference goes through the backbone (gradients and arithmetic as before)
    model.train()
    model.encode_references(images, maps)
    assert batches[-1] == 5
