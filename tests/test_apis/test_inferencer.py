"""OmniRISInferencer: any mix of text and visual prompts, batches, cached references, pictures."""

import glob
import os.path as osp

import mmcv
import numpy as np
import pytest
from conftest import REPO

from omniris_mm.apis import OmniRISInferencer

CONFIG = osp.join(REPO, 'configs', 'omnishapes', 'omnisegnet_tiny_omnishapes.py')


@pytest.fixture(scope='module')
def inferencer():
    import torch

    torch.manual_seed(0)
    return OmniRISInferencer(CONFIG, device='cpu')


@pytest.fixture(scope='module')
def images(omnishapes):
    paths = sorted(glob.glob(osp.join(omnishapes, 'images', '*.png')))[:4]
    return paths


def ref_prompts(path):
    img = mmcv.imread(path)
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    mask[h // 4 : h // 2, w // 4 : w // 2] = 1
    scribble = np.zeros((h, w), np.uint8)
    scribble[h // 3, w // 4 : w // 2] = 1
    return [
        dict(image=path, mask=mask),
        dict(image=img, box=(w / 4, h / 4, w / 2, h / 2)),
        dict(image=path, scribble=scribble),
    ]


def test_every_prompt_combination_answers_at_the_target_size(inferencer, images):
    target = images[0]
    h, w = mmcv.imread(target).shape[:2]
    mask, box, scribble = ref_prompts(images[1])
    for kwargs in (
        dict(text='the red circle'),
        dict(visual_prompts=[mask]),
        dict(visual_prompts=[box]),
        dict(visual_prompts=[scribble]),
        dict(text='the red circle', visual_prompts=[box]),
        dict(text='the red circle', visual_prompts=[mask, scribble]),
    ):
        out = inferencer(target, **kwargs)
        assert out['union_mask'].shape == (h, w) and out['union_mask'].dtype == bool
        assert out['masks'].shape[1:] == (h, w) and len(out['masks']) == len(out['scores'])
        assert isinstance(out['no_target'], bool) and 0.0 <= out['no_target_score'] <= 1.0
        if out['no_target']:
            assert len(out['masks']) == 0 and not out['union_mask'].any()


def test_batches_equal_single_calls_and_references_are_encoded_once(inferencer, images):
    mask = ref_prompts(images[1])[0]
    items = [dict(image=p, text='the blue square', visual_prompts=[mask]) for p in images]
    inferencer.clear_cache()
    before = inferencer.num_reference_passes
    batched = inferencer(items, batch_size=2)
    assert inferencer.num_reference_passes - before == 1  # one reference, four targets: one pass
    singles = [inferencer(i['image'], text=i['text'], visual_prompts=i['visual_prompts']) for i in items]
    assert inferencer.num_reference_passes - before == 1
    for a, b in zip(batched, singles):
        assert np.array_equal(a['union_mask'], b['union_mask']) and a['no_target'] == b['no_target']
        np.testing.assert_allclose(a['scores'], b['scores'], atol=1e-5)
    # Without the cache every target pays for the reference again, and the answers do not change.
    uncached = OmniRISInferencer.__new__(OmniRISInferencer)
    uncached.__dict__.update(inferencer.__dict__, cache_references=False, _ref_tokens={}, num_reference_passes=0)
    again = uncached(items, batch_size=2)
    assert uncached.num_reference_passes == len(items)
    assert all(np.array_equal(a['union_mask'], b['union_mask']) for a, b in zip(again, batched))


def test_bad_prompts_are_named(inferencer, images):
    mask = ref_prompts(images[1])[0]
    with pytest.raises(ValueError, match='input 0 visual prompt 0: give image= and exactly one of'):
        inferencer(images[0], visual_prompts=[dict(mask, box=(0, 0, 5, 5))])
    with pytest.raises(ValueError, match=r'input 0 visual prompt 0: mask is \(3, 3\) but the reference image is'):
        inferencer(images[0], visual_prompts=[dict(image=images[1], mask=np.ones((3, 3)))])
    with pytest.raises(ValueError, match='selects no pixel'):
        inferencer(images[0], visual_prompts=[dict(image=images[1], mask=np.zeros_like(mask['mask']))])
    with pytest.raises(ValueError, match='give a text, visual prompts and/or prompts on the target'):
        inferencer(images[0])
    with pytest.raises(FileNotFoundError, match='input 0: cannot read'):
        inferencer('/nonexistent.jpg', text='x')


def test_pictures_are_saved(inferencer, images, tmp_path):
    mask = ref_prompts(images[1])[0]
    inferencer([dict(image=images[0], text='the red circle', visual_prompts=[mask])], out_dir=str(tmp_path))
    [picture] = glob.glob(str(tmp_path / '*.png'))
    h = mmcv.imread(picture).shape[0]
    assert h == 360 + 28  # panels at the visualizer's height, plus the caption strip


def test_demo_command_line(images, tmp_path):
    import subprocess
    import sys

    mask = np.zeros(mmcv.imread(images[1]).shape[:2], np.uint8)
    mask[10:40, 10:40] = 255
    mmcv.imwrite(mask, str(tmp_path / 'mask.png'))
    cmd = [sys.executable, osp.join(REPO, 'tools', 'demo.py'), *images[:3], '--config', CONFIG]
    cmd += ['--text', 'the red circle', '--visual', images[1], 'mask', str(tmp_path / 'mask.png')]
    cmd += ['--visual', images[2], 'box', '5,5,60,60', '--out-dir', str(tmp_path / 'pics'), '--batch-size', '2']
    out = subprocess.run([*cmd, '--device', 'cpu'], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert '3 target(s) in' in out.stdout and '2 reference pass(es) for 2 reference(s)' in out.stdout
    assert sum(images[i] in out.stdout for i in range(3)) == 3
    assert len(glob.glob(str(tmp_path / 'pics' / '*.png'))) == 3


def test_demo_prompts_on_the_target(images, tmp_path):
    import subprocess
    import sys

    h, w = mmcv.imread(images[0]).shape[:2]
    strokes = np.zeros((h, w), np.uint8)
    strokes[h // 3, w // 4 : w // 2] = 255
    mmcv.imwrite(strokes, str(tmp_path / 'strokes.png'))
    cmd = [sys.executable, osp.join(REPO, 'tools', 'demo.py'), '--config', CONFIG, '--device', 'cpu']
    on_target = ['--click', '30,30,1', '--click', '5,5,0', '--box', '10,10,50,50']
    on_target += ['--scribble', str(tmp_path / 'strokes.png'), '--out-dir', str(tmp_path / 'pics')]
    on_target += ['--negative', images[1], 'box', '5,5,40,40']  # and a negative exemplar
    out = subprocess.run([*cmd, images[0], *on_target], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert '1 target(s) in' in out.stdout and len(glob.glob(str(tmp_path / 'pics' / '*.png'))) == 1
    assert 'for 1 reference(s)' in out.stdout  # the negative exemplar is a reference
    for args, message in (
        ([images[0], images[1], '--click', '30,30,1'], 'give one target'),
        ([images[0], '--click', '30,30,2'], 'the third number is 1 (positive) or 0 (negative)'),
        ([images[0], '--box', '1,2,3'], 'expected 4 comma-separated numbers'),
    ):
        out = subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=REPO, timeout=300)
        assert out.returncode != 0 and message in out.stderr + out.stdout, out.stderr[-2000:]


def test_a_no_target_answer_is_empty(inferencer, images):
    """Forced: with no_target_thr below 0 every answer is "no target": no mask, no instance."""
    cfg = inferencer.model.head.test_cfg
    saved = dict(cfg)
    cfg.update(no_target_thr=-1.0, instance_thr=0.0)
    try:
        out = inferencer(images[0], text='the red circle')
    finally:
        cfg.clear()
        cfg.update(saved)
    h, w = mmcv.imread(images[0]).shape[:2]
    assert out['no_target'] is True and out['union_mask'].shape == (h, w) and not out['union_mask'].any()
    assert len(out['masks']) == len(out['scores']) == 0
    assert inferencer(images[0], text='the red circle')['no_target_score'] == out['no_target_score']


def test_prompts_on_the_target_clicks_box_scribble_and_the_refinement_loop(inferencer, images):
    target = images[0]
    img = mmcv.imread(target)
    h, w = img.shape[:2]
    scribble = np.zeros((h, w), np.uint8)
    scribble[h // 2, w // 4 : w // 2] = 1
    answer = inferencer(
        target, text='the red circle', points=[(w // 3, h // 3, 1), (5, 5, 0)], target_box=(2, 3, 40, 30)
    )
    sample = answer['data_sample']
    assert sample.prompt_types == ['text', 'click', 'neg_click', 'target_box']
    assert answer['union_mask'].shape == (h, w)
    # Each prompt on the target is the target image as a reference, its map drawn on it.
    scale = sample.img_shape
    for ref in sample.ref_imgs[:3]:
        np.testing.assert_array_equal(ref.permute(1, 2, 0).numpy(), mmcv.imresize(img, scale[::-1]))
    sy, sx = scale[0] / h, scale[1] / w
    pos_map, neg_map = (m[0].numpy() for m in sample.prompt_maps[:2])
    for click_map, (x, y) in ((pos_map, (w // 3, h // 3)), (neg_map, (5, 5))):  # one disk each, at its click
        ys, xs = np.nonzero(click_map)
        assert abs(ys.mean() - (y + 0.5) * sy + 0.5) <= 1 and abs(xs.mean() - (x + 0.5) * sx + 0.5) <= 1
    box_map = sample.prompt_maps[2][0].numpy()
    ys, xs = np.nonzero(box_map)
    assert abs(ys.min() - 3 * sy) <= 1 and abs(xs.max() + 1 - 40 * sx) <= 1
    # The loop: the same prompts and one more click.
    passes = inferencer.num_reference_passes
    again = inferencer.refine(answer, (w // 2, h // 2, 0))
    assert again['inputs']['points'] == [(w // 3, h // 3, 1), (5, 5, 0), (w // 2, h // 2, 0)]
    assert again['data_sample'].prompt_types == sample.prompt_types
    # the positive-click and box prompts are unchanged: cached; the negative clicks changed: one new pass.
    assert inferencer.num_reference_passes == passes + 1
    only = inferencer(target, target_scribble=scribble)
    assert only['data_sample'].prompt_types == ['target_scribble']
    with pytest.raises(ValueError, match='positive click'):
        inferencer(target, points=[(3, 3, 0)])
    with pytest.raises(ValueError, match='outside'):
        inferencer(target, points=[(w + 3, 3, 1)])


def test_a_negative_exemplar_reuses_the_reference_tokens_and_changes_the_answer(inferencer, images):
    pos, ref = ref_prompts(images[1])[0], ref_prompts(images[2])[1]
    plain = inferencer(images[0], visual_prompts=[pos, ref])
    passes = inferencer.num_reference_passes
    negative = inferencer(images[0], visual_prompts=[pos, dict(ref, negative=True)])
    assert inferencer.num_reference_passes == passes  # the tokens of a reference do not depend on the flag
    assert negative['no_target_score'] != plain['no_target_score']
