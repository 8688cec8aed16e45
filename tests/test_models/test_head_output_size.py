"""AdaptiveMaskHead._to_image takes the image's own region out of a padded batch's stride-4 maps
(the top-left img_shape), then rescales it to the original size."""

import torch

from omniris_mm.models.heads.adaptive_mask_head import AdaptiveMaskHead


def test_the_crop_is_the_image_region_of_the_padded_batch():
    # Batch input 64 x 96 (padded), this image 48 x 80 at the input, 96 x 160 originally.
    meta = dict(batch_input_shape=(64, 96), img_shape=(48, 80), ori_shape=(96, 160))
    maps = torch.zeros(1, 1, 16, 24)
    maps[..., 10:] = 1.0  # a step at stride-4 column 10, i.e. input column 40
    # Bilinear x4 (align_corners=False) reads source column (x + 0.5) / 4 - 0.5: 0.5 is crossed
    # between x = 39 (9.375) and x = 40 (9.625): the step stays at column 40 of the input.
    crop = AdaptiveMaskHead._to_image(maps, meta, rescale=False)[0, 0] > 0.5
    assert crop.shape == (48, 80)
    assert not crop[:, :40].any() and crop[:, 40:].all()
    # Then x2 to the original size: column 80. (Had the padded 96 columns been squeezed into the
    # image's 80, the step would sit at 40 * 80 / 96 = 33.3 of the input.)
    full = AdaptiveMaskHead._to_image(maps, meta, rescale=True)[0, 0] > 0.5
    assert full.shape == (96, 160)
    assert not full[:, :80].any() and full[:, 80:].all()


def test_the_union_mask_is_the_argmax_of_the_logits():
    """union_mask (max(0).indices, the fast path on the CPU) answers what argmax over the background /
    target logits answers, ties (background) and NaNs (argmax takes a NaN as the largest) included."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 37, 53, generator=g)
    logits[:, :5] = 0.25  # ties: background
    logits[1, 10, :7] = float('nan')  # NaN target logit: target
    logits[0, 11, :9] = float('nan')  # NaN background logit: background
    want = torch.stack([logits[0], logits[1]]).argmax(0, keepdim=True).to(torch.uint8)
    got = AdaptiveMaskHead.union_mask(logits)
    assert got.dtype == torch.uint8 and got.shape == (1, 37, 53)
    assert torch.equal(got, want)
    # and against the comparison written out: target where its logit is larger or NaN
    target = (logits[1] > logits[0]) | logits[1].isnan()
    target &= ~logits[0].isnan()
    assert torch.equal(got[0].bool(), target)
    assert got[0, :5].sum() == 0 and got[0, 10, :7].all() and not got[0, 11, :9].any()
