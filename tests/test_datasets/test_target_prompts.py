"""Prompts drawn on the target image itself: click placement, the prompt maps, the COCO source."""

import json
import os.path as osp

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from conftest import PIPELINE, shared

from omniris_mm.datasets import CocoTargetPromptDataset
from omniris_mm.datasets.transforms import (
    SynthesizePromptMaps,
    click_prompts,
    first_click,
    largest_error_click,
    simulate_clicks,
)


def rectangle(shape, y0, y1, x0, x1):
    m = np.zeros(shape, np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def border_distance(y0, y1, x0, x1):
    """Per pixel of the rectangle rows y0..y1-1, cols x0..x1-1: pixels to the first pixel outside
    (straight lines are the nearest way out of an axis-aligned rectangle)."""
    ys, xs = np.mgrid[y0:y1, x0:x1]
    return np.minimum.reduce([ys - y0 + 1, y1 - ys, xs - x0 + 1, x1 - xs])


def test_the_first_click_is_inside_far_from_the_border():
    mask = rectangle((64, 64), 10, 30, 5, 45)  # 20 x 40
    dist = border_distance(10, 30, 5, 45)
    best = {(int(x) + 5, int(y) + 10) for y, x in zip(*np.nonzero(dist == dist.max()))}
    assert dist.max() == 10 and len(best) == 2 * 22  # rows 19-20, columns 14-35
    for seed in range(20):
        x, y, positive = first_click(mask, np.random.default_rng(seed), far=1.0)
        assert positive and (x, y) in best
        x, y, _ = first_click(mask, np.random.default_rng(seed), far=0.5)
        assert dist[y - 10, x - 5] >= 5
    with pytest.raises(ValueError, match='empty'):
        first_click(np.zeros((8, 8), np.uint8), np.random.default_rng(0))


def test_the_next_click_goes_to_the_centre_of_the_largest_error_region():
    gt = rectangle((100, 100), 10, 80, 10, 80)
    pred = gt.copy()
    pred[50:60, 20:30] = 0  # a 10 x 10 miss: positive click at its centre
    pred[85:91, 85:91] = 1  # a 6 x 6 false positive: smaller
    # The centre of a 10 x 10 block: distance 5 on rows/columns 4-5 of it; the first in raster order.
    assert largest_error_click(gt, pred) == (24, 54, True)
    pred[0:8, 85:100] = 1  # an 8 x 15 false positive, touching the image border: now the largest
    x, y, positive = largest_error_click(gt, pred)
    assert not positive and 85 <= x < 100 and y == 3  # rows 0-7: the image border counts as border
    ignore = np.zeros_like(gt)
    ignore[0:8, 85:100] = 1
    assert largest_error_click(gt, pred, ignore) == (24, 54, True)
    assert largest_error_click(gt, gt) is None


def test_simulated_clicks_are_positive_inside_and_negative_outside():
    mask = rectangle((120, 120), 30, 90, 20, 100)
    for seed in range(10):
        clicks = simulate_clicks(mask, np.random.default_rng(seed), 5)
        assert clicks == simulate_clicks(mask, np.random.default_rng(seed), 5)  # seeded: repeatable
        assert 1 <= len(clicks) <= 5 and clicks[0][2]
        for x, y, positive in clicks:
            assert bool(mask[y, x]) == positive
        assert len(set((x, y) for x, y, _ in clicks)) == len(clicks)
    assert len(simulate_clicks(mask, np.random.default_rng(0), 1)) == 1


def test_click_prompts_are_disks_and_negatives_are_a_prompt_of_their_own():
    (kind, pos_map, pos), (neg_kind, neg_map, neg) = click_prompts(
        [(20, 20, 1), (60.4, 40, 0), (70, 70, True)], (100, 100), 5
    )
    lattice_disk = sum(1 for dx in range(-5, 6) for dy in range(-5, 6) if dx * dx + dy * dy <= 25)
    assert (kind, neg_kind) == ('click', 'neg_click')
    assert pos == [(20, 20, True), (70, 70, True)] and neg == [(60, 40, False)]
    assert int(pos_map.sum()) == 2 * lattice_disk and int(neg_map.sum()) == lattice_disk
    assert pos_map[20, 25] and not pos_map[20, 26] and neg_map[40, 60] and not pos_map[40, 60]
    assert len(click_prompts([(1, 1, 1)], (10, 10), 2)) == 1
    with pytest.raises(ValueError, match='positive click'):
        click_prompts([(1, 1, 0)], (10, 10), 2)
    with pytest.raises(ValueError, match='outside'):
        click_prompts([(1, 1, 1), (10, 3, 0)], (10, 10), 2)


def _persons(root, min_area):
    with open(osp.join(root, 'instances.json')) as f:
        anns = json.load(f)['annotations']
    return [a for a in anns if a['category_id'] == 1 and not a['iscrowd'] and a['area'] >= min_area]


def test_coco_instances_become_one_instance_samples_prompted_on_the_target():
    root = shared('coco_val2017_sample')
    persons = _persons(root, 500)
    pipeline = [dict(p) for p in PIPELINE]
    pipeline[3] = dict(type='SynthesizePromptMaps', target_prompt_probs=dict(click=1.0), num_clicks=(3, 3))
    ds = CocoTargetPromptDataset(
        ann_file=osp.join(root, 'instances.json'),
        data_prefix=dict(img_path=root),
        category_ids=[1],
        min_area=500,
        pipeline=pipeline,
        test_mode=True,
    )
    assert len(ds) == len(persons) == 22
    for i in (0, 9, 21):
        info = ds.get_data_info(i)
        ann = next(a for a in persons if a['id'] == info['instances'][0]['ann_id'])
        sample = ds[i]['data_samples']
        assert sample.prompt_modality == 'target' and sample.setting == '1v1'
        assert sample.prompt_types[0] == 'click' and set(sample.prompt_types) <= {'click', 'neg_click'}
        assert [m['on_target'] for m in sample.ref_metas] == [True] * len(sample.prompt_types)
        truth = mask_utils.decode(ann['segmentation']).astype(bool)
        np.testing.assert_array_equal(sample.gt_sem_seg.sem_seg[0].numpy() == 1, truth)  # one instance only
        assert sample.ref_imgs[0].shape[1:] == truth.shape and sample.ref_metas[0]['img_path'] == sample.img_path
        clicks = [c for m in sample.ref_metas for c in m['clicks']]
        assert 1 <= len(clicks) <= 3
        for x, y, positive in clicks:
            assert truth[y, x] == positive
        assert all(sample.prompt_maps[0][0, y, x] for x, y, _ in sample.ref_metas[0]['clicks'])
    first, again = (ds[0]['data_samples'] for _ in range(2))
    assert [m['clicks'] for m in first.ref_metas] == [m['clicks'] for m in again.ref_metas]  # test mode: fixed


def test_a_box_on_the_target_is_the_tight_box_without_jitter():
    root = shared('coco_val2017_sample')
    pipeline = [dict(p) for p in PIPELINE]
    pipeline[3] = dict(type='SynthesizePromptMaps', box_jitter=0.0)
    ds = CocoTargetPromptDataset(
        ann_file=osp.join(root, 'instances.json'),
        data_prefix=dict(img_path=root),
        category_ids=[19],
        prompt_type='target_box',
        pipeline=pipeline,
        test_mode=True,
    )
    sample = ds[0]['data_samples']
    truth = mask_utils.decode(_coco_ann(root, sample.gt_instances.ann_ids[0])['segmentation'])
    ys, xs = np.nonzero(truth)
    expected = np.zeros_like(truth)
    expected[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1] = 1
    assert sample.prompt_types == ['target_box']
    np.testing.assert_array_equal(sample.prompt_maps[0][0].numpy(), expected)


def _coco_ann(root, ann_id):
    with open(osp.join(root, 'instances.json')) as f:
        return next(a for a in json.load(f)['annotations'] if a['id'] == int(ann_id))


def test_jittered_boxes_move_each_edge_by_at_most_the_jitter():
    mask = rectangle((200, 200), 50, 100, 40, 140)  # 50 x 100
    transform = SynthesizePromptMaps(box_jitter=0.1)
    seen = set()
    for seed in range(30):
        results = dict(record_id='r', visual_prompts=[dict(ref_mask=mask, on_target=True, prompt_type='target_box')])
        results['prompt_seed'] = seed
        box = transform(results)['visual_prompts'][0]['prompt_map']
        ys, xs = np.nonzero(box)
        assert int(box.sum()) == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)  # a filled box
        edges = (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1)
        assert abs(edges[0] - 50) <= 5 and abs(edges[1] - 100) <= 5
        assert abs(edges[2] - 40) <= 10 and abs(edges[3] - 140) <= 10
        seen.add(edges)
    assert len(seen) > 10  # the jitter is there


def test_bad_target_prompt_settings_are_refused():
    root = shared('coco_val2017_sample')
    with pytest.raises(ValueError, match='prompt_type must be one of'):
        CocoTargetPromptDataset(
            ann_file=osp.join(root, 'instances.json'), data_prefix=dict(img_path=root), prompt_type='mask'
        )
    with pytest.raises(ValueError, match='target_prompt_probs'):
        SynthesizePromptMaps(target_prompt_probs=dict(neg_click=1.0))
    with pytest.raises(ValueError, match='num_clicks'):
        SynthesizePromptMaps(num_clicks=(0, 2))


def test_later_training_clicks_fix_distractor_instances_as_test_time_errors():
    """A stand-in answer that covers a whole other instance (as a model reading the click as its
    category answers) gets a negative click at that instance's centre."""
    mask = rectangle((100, 100), 10, 30, 10, 30)  # the target: 20 x 20
    distractors = np.zeros((100, 100), np.uint8)
    distractors[49:80, 49:80] = 1  # another instance, 31 x 31: its centre is (64, 64) alone
    distractors[85:95, 5:15] = 2
    with_them = [
        simulate_clicks(mask, np.random.default_rng(s), 2, distractors=distractors, distractor_prob=1.0)
        for s in range(12)
    ]
    # Each distractor joins with probability 1/2: the big one, when it does, is the largest error.
    big = [clicks[1] for clicks in with_them if clicks[1][:2] == (64, 64)]
    assert big and all(not positive for _, _, positive in big)
    assert 0 < len(big) < len(with_them)  # each distractor joins with probability 1/2
    for s in range(12):  # distractor_prob=0: the old behaviour, no click on another instance
        clicks = simulate_clicks(mask, np.random.default_rng(s), 3, distractors=distractors, distractor_prob=0.0)
        assert clicks == simulate_clicks(mask, np.random.default_rng(s), 3)
        assert not any(distractors[y, x] for x, y, _ in clicks)
    # A distractor overlapping the target never turns target pixels into errors.
    overlap = np.zeros((100, 100), np.uint8)
    overlap[10:30, 10:60] = 1
    for s in range(5):
        for x, y, positive in simulate_clicks(
            mask, np.random.default_rng(s), 4, distractors=overlap, distractor_prob=1.0
        ):
            assert bool(mask[y, x]) == positive


def test_coco_target_prompts_carry_their_category_distractors():
    root = shared('coco_val2017_sample')
    with open(osp.join(root, 'instances.json')) as f:
        anns = json.load(f)['annotations']
    kwargs = dict(ann_file=osp.join(root, 'instances.json'), data_prefix=dict(img_path=root), category_ids=[1])
    kwargs.update(min_area=500, test_mode=True)
    pipeline = [dict(type='LoadImageFromFile'), dict(type='LoadOmniAnnotations'), dict(type='LoadVisualPrompts')]
    ds = CocoTargetPromptDataset(pipeline=pipeline, **kwargs)
    every = CocoTargetPromptDataset(pipeline=pipeline, distractors='all', **kwargs)
    none = CocoTargetPromptDataset(pipeline=pipeline, distractors=None, **kwargs)
    checked = 0
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        ann_id, img_id = info['instances'][0]['ann_id'], info['img_id']
        same = [
            a
            for a in anns
            if a['image_id'] == img_id and a['id'] != ann_id and a['category_id'] == 1 and not a['iscrowd']
        ]
        others = [a for a in anns if a['image_id'] == img_id and a['id'] != ann_id and not a['iscrowd']]
        assert len(info['visual_prompts'][0]['distractors']) == len(same)
        assert len(every.get_data_info(i)['visual_prompts'][0]['distractors']) == len(others)
        assert 'distractors' not in none.get_data_info(i)['visual_prompts'][0]
        if len(same) >= 2 and checked < 2:  # the label map: k on the k-th distractor, the later on top
            prompt = ds[i]['visual_prompts'][0]
            expected = np.zeros(prompt['ref_mask'].shape, np.uint8)
            for k, a in enumerate(same, start=1):
                h, w = expected.shape
                seg = a['segmentation']
                if isinstance(seg, list):
                    seg = mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
                elif isinstance(seg['counts'], list):
                    seg = mask_utils.frPyObjects(seg, h, w)
                expected[mask_utils.decode(seg) > 0] = k
            np.testing.assert_array_equal(prompt['distractor_map'], expected)
            checked += 1
    assert checked == 2
    with pytest.raises(ValueError, match='distractors must be'):
        CocoTargetPromptDataset(pipeline=pipeline, distractors='others', **kwargs)


def test_the_distractor_map_moves_with_the_image():
    from omniris_mm.datasets.transforms import OmniRandomFlip, OmniResize

    img = np.zeros((40, 60, 3), np.uint8)
    labels = np.zeros((40, 60), np.uint8)
    labels[5:15, 10:20], labels[20:30, 40:55] = 1, 2
    ref = rectangle((40, 60), 0, 4, 0, 4)
    prompt = dict(img=img.copy(), ref_mask=ref, distractor_map=labels.copy(), on_target=True)
    results = dict(img=img, img_shape=(40, 60), ori_shape=(40, 60), visual_prompts=[prompt])
    results = OmniRandomFlip(prob=1.0, direction='horizontal')(results)
    np.testing.assert_array_equal(results['visual_prompts'][0]['distractor_map'], labels[:, ::-1])
    results = OmniResize(scale=(120, 80), keep_ratio=False)(results)
    np.testing.assert_array_equal(
        results['visual_prompts'][0]['distractor_map'], np.repeat(np.repeat(labels[:, ::-1], 2, 0), 2, 1)
    )


def test_inner_distance_is_exact_and_the_same_on_every_call():
    """The distance behind the first click and the error-region centres: exact Euclidean distance to
    the nearest pixel outside (image border outside), computed here by brute force, and bit-equal
    between calls (OpenCV's float32 transform moved by ~1e-6 between calls, moving seeded clicks)."""
    from omniris_mm.datasets.transforms.clicks import _inner_distance

    mask = rectangle((40, 50), 5, 30, 8, 44)
    mask[12:15, 20:24] = 0
    outside = np.argwhere(np.pad(mask, 1) == 0) - 1
    want = np.zeros(mask.shape)
    for y, x in np.argwhere(mask):
        want[y, x] = np.sqrt(((outside - (y, x)) ** 2).sum(1)).min()
    got = [_inner_distance(mask > 0) for _ in range(100)]
    np.testing.assert_allclose(got[0], want, rtol=0, atol=1e-9)
    assert all(np.array_equal(g, got[0]) for g in got)
