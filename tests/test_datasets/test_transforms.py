from collections import Counter

import numpy as np
import pytest
import torch
from mmdet.structures.mask import BitmapMasks

from omniris_mm.datasets import OmniDataError
from omniris_mm.datasets.transforms import (
    OmniRandomFlip,
    OmniResize,
    PackOmniInputs,
    SynthesizePromptMaps,
    box_prompt,
    flip_text,
    scribble_prompt,
)


def blob_mask(h=120, w=160):
    yy, xx = np.mgrid[:h, :w]
    return (((yy - 60) / 30.0) ** 2 + ((xx - 70) / 45.0) ** 2 <= 1).astype(np.uint8)


def sample(text='the dog on the left', prompt_type=None, seed=0):
    """A results dict as the loading transforms leave it: target 100x150, one reference 120x160."""
    target_mask = np.zeros((100, 150), np.uint8)
    target_mask[10:40, 5:50] = 1
    ref_img = np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    return dict(
        img=np.random.default_rng(2).integers(0, 255, (100, 150, 3), dtype=np.uint8),
        img_shape=(100, 150),
        ori_shape=(100, 150),
        gt_masks=BitmapMasks(target_mask[None], 100, 150),
        gt_bboxes_labels=np.zeros(1, int),
        gt_ignore_flags=np.zeros(1, bool),
        gt_ann_ids=np.array([7]),
        gt_no_target=False,
        text=text,
        prompt_seed=seed,
        record_id='unit',
        prompt_modality='omni',
        setting='Nv1',
        visual_prompts=[
            dict(
                img=ref_img,
                img_shape=(120, 160),
                ori_shape=(120, 160),
                ref_mask=blob_mask(),
                prompt_type=prompt_type,
                ann_id=3,
                category_id=1,
            )
        ],
    )


def test_box_prompt_is_the_filled_tight_box():
    mask = blob_mask()
    box = box_prompt(mask)
    ys, xs = np.nonzero(mask)
    assert box[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].all()
    assert box.sum() == (ys.ptp() + 1) * (xs.ptp() + 1)


def test_scribble_lies_inside_the_mask_and_is_never_empty():
    mask = blob_mask()
    for seed in range(30):
        scribble = scribble_prompt(mask, np.random.default_rng(seed))
        assert scribble.any()
        assert not (scribble & (1 - mask)).any()
        assert scribble.sum() < mask.sum()
    tiny = np.zeros((50, 50), np.uint8)
    tiny[20, 20] = 1
    assert scribble_prompt(tiny, np.random.default_rng(0)).sum() == 1


def test_scribble_width_scales_with_the_map():
    small, large = blob_mask(120, 160), np.kron(blob_mask(120, 160), np.ones((4, 4), np.uint8))
    ratio = np.mean(
        [
            scribble_prompt(large, np.random.default_rng(s), max_strokes=1).sum()
            / scribble_prompt(small, np.random.default_rng(s), max_strokes=1).sum()
            for s in range(20)
        ]
    )
    assert 8 < ratio < 24  # area grows ~16x when both length and width scale 4x


def test_prompt_types_follow_probabilities_and_fixed_types():
    synth = SynthesizePromptMaps(prompt_probs=dict(mask=1, box=1, scribble=2))
    counts = Counter(synth(sample(seed=s))['visual_prompts'][0]['prompt_type'] for s in range(800))
    assert abs(counts['scribble'] / 800 - 0.5) < 0.06 and abs(counts['mask'] / 800 - 0.25) < 0.06
    only_box = SynthesizePromptMaps(prompt_probs=dict(box=1))
    assert {only_box(sample(seed=s))['visual_prompts'][0]['prompt_type'] for s in range(20)} == {'box'}
    fixed = synth(sample(prompt_type='mask'))['visual_prompts'][0]
    np.testing.assert_array_equal(fixed['prompt_map'], blob_mask())
    with pytest.raises(ValueError, match='prompt_probs'):
        SynthesizePromptMaps(prompt_probs=dict(lasso=1))


def test_prompt_synthesis_is_deterministic_given_the_seed():
    synth = SynthesizePromptMaps()
    a, b = synth(sample(seed=5)), synth(sample(seed=5))
    np.testing.assert_array_equal(a['visual_prompts'][0]['prompt_map'], b['visual_prompts'][0]['prompt_map'])
    maps = {synth(sample(seed=s))['visual_prompts'][0]['prompt_map'].tobytes() for s in range(10)}
    assert len(maps) > 3


def test_flip_text():
    assert (
        flip_text('the dog on the left, left of the Right cup', 'horizontal')
        == 'the dog on the right, right of the Left cup'
    )
    assert flip_text('leftmost car and the right-hand one', 'horizontal') == 'rightmost car and the left-hand one'
    assert flip_text('a bright light', 'horizontal') == 'a bright light'
    assert flip_text('the top shelf', 'vertical') == 'the bottom shelf'


def test_flip_moves_target_reference_and_prompt_map_together():
    results = SynthesizePromptMaps(prompt_probs=dict(scribble=1))(sample())
    before = {k: v.copy() for k, v in results['visual_prompts'][0].items() if k in ('img', 'prompt_map', 'ref_mask')}
    target_before = results['img'].copy(), results['gt_masks'].masks.copy()
    out = OmniRandomFlip(prob=1.0)(results)
    assert out['flip'] and out['text'] == 'the dog on the right'
    np.testing.assert_array_equal(out['img'], target_before[0][:, ::-1])
    np.testing.assert_array_equal(out['gt_masks'].masks, target_before[1][:, :, ::-1])
    prompt = out['visual_prompts'][0]
    for key, value in before.items():
        np.testing.assert_array_equal(prompt[key], value[:, ::-1], err_msg=key)
    kept = OmniRandomFlip(prob=1.0, flip_references=False)(SynthesizePromptMaps()(sample()))
    np.testing.assert_array_equal(kept['visual_prompts'][0]['ref_mask'], blob_mask())


def test_resize_moves_reference_and_its_maps_together():
    out = OmniResize(scale=(64, 48), keep_ratio=False)(sample())
    assert out['img'].shape[:2] == (48, 64) and out['gt_masks'].masks.shape == (1, 48, 64)
    prompt = out['visual_prompts'][0]
    assert prompt['img'].shape[:2] == (48, 64) and prompt['ref_mask'].shape == (48, 64)
    expected = np.kron(blob_mask(120, 160)[::5, ::5], np.ones((2, 2), np.uint8))  # 24x32 -> 48x64 (nearest)
    assert (prompt['ref_mask'] != expected).mean() < 0.05


def test_resize_with_pillow_samples_masks_and_images_as_pil_does():
    from PIL import Image

    out = OmniResize(scale=(70, 45), keep_ratio=False, backend='pillow', mask_backend='pillow')(sample())
    ref = sample()['visual_prompts'][0]
    # PIL resizes by pixel centres; computed here with PIL itself.
    expected_mask = np.asarray(Image.fromarray(ref['ref_mask']).resize((70, 45), Image.NEAREST))
    expected_img = np.asarray(Image.fromarray(ref['img']).resize((70, 45), Image.BILINEAR))
    assert np.array_equal(out['visual_prompts'][0]['ref_mask'], expected_mask)
    assert np.array_equal(out['visual_prompts'][0]['img'], expected_img)
    target = sample()['gt_masks'].masks[0]
    assert np.array_equal(out['gt_masks'].masks[0], np.asarray(Image.fromarray(target).resize((70, 45), Image.NEAREST)))
    # mmdet's default (cv2) samples other pixels at this scale.
    cv2_out = OmniResize(scale=(70, 45), keep_ratio=False)(sample())
    assert not np.array_equal(cv2_out['visual_prompts'][0]['ref_mask'], expected_mask)
    with pytest.raises(ValueError, match='mask_backend'):
        OmniResize(scale=(70, 45), mask_backend='torch')


def test_packing():
    results = SynthesizePromptMaps(prompt_probs=dict(box=1))(sample())
    packed = PackOmniInputs()(results)
    ds = packed['data_samples']
    assert packed['inputs'].shape == (3, 100, 150)
    assert ds.gt_sem_seg.sem_seg.shape == (1, 100, 150) and int(ds.gt_sem_seg.sem_seg.sum()) == 30 * 45
    assert ds.gt_no_target is False and ds.gt_instances.ann_ids.tolist() == [7]
    assert ds.text == 'the dog on the left' and ds.prompt_types == ['text', 'box']
    assert ds.prompt_modality == 'omni' and ds.setting == 'Nv1'
    assert ds.ref_imgs[0].shape == (3, 120, 160) and ds.ref_imgs[0].dtype == torch.uint8
    assert ds.prompt_maps[0].shape == (1, 120, 160) and ds.ref_metas[0]['prompt_type'] == 'box'
    np.testing.assert_array_equal(ds.ref_masks[0][0].numpy(), blob_mask())
    assert (ds.prompt_maps[0] >= ds.ref_masks[0]).all()  # a box covers its instance
    no_map = sample()
    with pytest.raises(OmniDataError, match='no prompt map'):
        PackOmniInputs()(no_map)


def test_packing_rejects_a_target_mask_lost_by_the_transforms():
    results = SynthesizePromptMaps()(sample())
    results['gt_masks'] = BitmapMasks(np.zeros((1, 100, 150), np.uint8), 100, 150)
    with pytest.raises(OmniDataError, match='unit: the referred masks are empty'):
        PackOmniInputs()(results)


def clicked(clicks, h=120, w=160):
    """A request's click prompt on a 120x160 image (as LoadRequestPrompts leaves it)."""
    img = np.random.default_rng(3).integers(0, 255, (h, w, 3), dtype=np.uint8)
    return dict(img=img, img_shape=(h, w), ori_shape=(h, w), ref_mask=np.zeros((h, w), np.uint8),
                prompt_type='click', on_target=True, clicks=list(clicks))  # fmt: skip


def test_a_requests_clicks_move_with_resize_and_flip():
    """Each click to the output pixel holding its input pixel's centre: (x + 0.5) * scale, floored;
    mirrored by a flip (w - 1 - x)."""
    results = dict(sample(), visual_prompts=[clicked([(0, 0, True), (159, 119, False), (37, 81, True)])])
    out = OmniResize(scale=(64, 48), keep_ratio=False)(results)  # x * 0.4, y * 0.4
    assert out['visual_prompts'][0]['clicks'] == [(0, 0, True), (63, 47, False), (15, 32, True)]
    flipped = OmniRandomFlip(prob=1.0, direction='horizontal')(out)
    assert flipped['visual_prompts'][0]['clicks'] == [(63, 0, True), (0, 47, False), (48, 32, True)]
    vertical = OmniRandomFlip(prob=1.0, direction='vertical')(dict(sample(), visual_prompts=[clicked([(5, 7, True)])]))
    assert vertical['visual_prompts'][0]['clicks'] == [(5, 112, True)]


def test_a_given_prompt_map_is_kept_and_clicks_are_drawn():
    """A map a user drew (a scribble, a box on the target) is kept as drawn whatever the config's
    prompt probabilities or box jitter; clicks become disks of click_radius at base_size."""
    strokes = np.zeros((120, 160), np.uint8)
    strokes[50, 20:90] = 1
    given = dict(sample()['visual_prompts'][0], prompt_type='scribble', prompt_map=strokes.copy())
    box = np.zeros((120, 160), np.uint8)
    box[10:30, 40:100] = 1
    on_target = dict(clicked([]), prompt_type='target_box', ref_mask=box.copy(), prompt_map=box.copy())
    on_target.pop('clicks')
    clicks = clicked([(30, 40, True), (100, 60, False)])
    results = dict(sample(), visual_prompts=[given, on_target, clicks])
    out = SynthesizePromptMaps(prompt_probs=dict(mask=1.0), box_jitter=0.4, click_radius=10, base_size=160)(results)
    types = [p['prompt_type'] for p in out['visual_prompts']]
    assert types == ['scribble', 'target_box', 'click', 'neg_click']
    np.testing.assert_array_equal(out['visual_prompts'][0]['prompt_map'], strokes)
    np.testing.assert_array_equal(out['visual_prompts'][1]['prompt_map'], box)
    radius = int(10 * np.sqrt(120 * 160) / 160)  # 8
    yy, xx = np.mgrid[:120, :160]
    for prompt, (x, y) in zip(out['visual_prompts'][2:], [(30, 40), (100, 60)]):
        disk = (xx - x) ** 2 + (yy - y) ** 2 <= radius**2
        assert (prompt['prompt_map'] > 0).sum() == disk.sum() and (prompt['prompt_map'][disk] > 0).all()
