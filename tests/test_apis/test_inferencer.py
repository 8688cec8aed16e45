"""OmniRISInferencer: mmengine's BaseInferencer over the config's own test pipeline; every prompt kind,
batches and folders, the bounded reference cache, pictures and JSON answers, model names."""

import glob
import json
import os.path as osp
import subprocess
import sys

import cv2
import mmcv
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from conftest import REPO
from mmdet.structures import DetDataSample
from mmengine.config import Config

from omniris_mm.apis import OmniRISInferencer
from omniris_mm.apis import inferencer as inferencer_module
from omniris_mm.apis.inferencer import config_test_pipeline
from omniris_mm.utils import BytesLRUCache

CONFIG = osp.join(REPO, 'configs', 'omnishapes', 'omnisegnet_tiny_omnishapes.py')
SIZE = (128, 128)  # the config's OmniResize scale (h, w)
DEMO = osp.join(REPO, 'demo', 'image_demo.py')


@pytest.fixture(scope='module')
def inferencer():
    torch.manual_seed(0)
    return OmniRISInferencer(CONFIG, device='cpu')


@pytest.fixture(scope='module')
def images(omnishapes):
    paths = sorted(glob.glob(osp.join(omnishapes, 'images', '*.png')))[:4]
    return paths


def answer_of(inferencer, *args, **kwargs):
    return inferencer(*args, **kwargs)['predictions'][0]


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


def test_the_pipeline_is_the_configs_test_pipeline_with_request_loaders(inferencer):
    steps = [type(t).__name__ for t in inferencer.pipeline.transforms]
    assert steps == [
        'OmniInferencerLoader',
        'LoadRequestPrompts',
        'OmniResize',
        'SynthesizePromptMaps',
        'PackOmniInputs',
    ]
    # The target loader is the config's (its colour type and cache), used for paths.
    loader = inferencer.pipeline.transforms[0].from_file
    assert type(loader).__name__ == 'CachedLoadImageFromFile' and loader.color_type == 'color_ignore_orientation'


def test_any_other_step_of_the_test_pipeline_runs_too(images):
    """A flip added to the config's test pipeline reaches the model: the packed target is the
    resized target mirrored, and so is the reference."""
    cfg = Config.fromfile(CONFIG)
    pipeline = config_test_pipeline(cfg)
    pipeline.insert(3, dict(type='OmniRandomFlip', prob=1.0, direction='horizontal'))
    flipped = OmniRISInferencer(cfg, device='cpu', init_weights=False)
    mask = ref_prompts(images[1])[0]
    packed = flipped.pack(dict(image=images[0], text='the red circle on the left', visual_prompts=[mask]))
    expected = mmcv.imresize(mmcv.imread(images[0]), SIZE[::-1])[:, ::-1]
    assert np.array_equal(packed['inputs'].permute(1, 2, 0).numpy(), expected)
    sample = packed['data_samples']
    assert sample.text == 'the red circle on the right'  # the flip's text rule ran as well
    want = mmcv.imresize(mask['mask'], SIZE[::-1], interpolation='nearest')[:, ::-1]
    assert np.array_equal(sample.prompt_maps[0][0].numpy(), want)


def test_the_prompt_maps_are_the_drawn_regions_resized_and_the_clicks_drawn_as_in_training(inferencer, images):
    """Masks, boxes and scribbles: the region as given, resized nearest (computed here with mmcv);
    clicks: a disk of SynthesizePromptMaps' radius (5 px at 480, scaled) at the click's pixel in the
    resized target (computed here with cv2)."""
    target = mmcv.imread(images[0])
    h, w = target.shape[:2]
    mask, box, scribble = ref_prompts(images[1])
    ref_h, ref_w = mmcv.imread(images[1]).shape[:2]
    strokes = np.zeros((h, w), np.uint8)
    strokes[h // 2, 3 : w // 2] = 1
    points = [(w // 3, h // 3, 1), (7, 9, 0)]
    packed = inferencer.pack(
        dict(
            image=images[0],
            visual_prompts=[mask, box, scribble],
            points=points,
            target_box=(2, 3, 40, 30),
            target_scribble=strokes,
        )  # fmt: skip
    )
    sample = packed['data_samples']
    maps = [m[0].numpy() for m in sample.prompt_maps]
    assert sample.prompt_types == ['mask', 'box', 'scribble', 'click', 'neg_click', 'target_box', 'target_scribble']

    def nearest(region):
        return mmcv.imresize(region.astype(np.uint8), SIZE[::-1], interpolation='nearest')

    box_region = np.zeros((ref_h, ref_w), np.uint8)
    box_region[int(ref_h / 4) : int(np.ceil(ref_h / 2)), int(ref_w / 4) : int(np.ceil(ref_w / 2))] = 1
    target_box = np.zeros((h, w), np.uint8)
    target_box[3:30, 2:40] = 1
    for got, region in zip(maps[:3] + maps[5:], [mask['mask'], box_region, scribble['scribble'], target_box, strokes]):
        assert np.array_equal(got, nearest(region))
    radius = int(np.floor(5.0 * np.sqrt(SIZE[0] * SIZE[1]) / 480))
    for got, (x, y, _) in zip(maps[3:5], points):
        disk = np.zeros(SIZE, np.uint8)
        cv2.circle(disk, (int((x + 0.5) * SIZE[1] / w), int((y + 0.5) * SIZE[0] / h)), radius, 1, thickness=-1)
        assert np.array_equal(got, disk)
    # Each prompt on the target is the target image as a reference.
    for ref in sample.ref_imgs[3:]:
        np.testing.assert_array_equal(ref.permute(1, 2, 0).numpy(), mmcv.imresize(target, SIZE[::-1]))


def test_the_answer_is_the_models_test_step_on_the_same_request(inferencer, images):
    mask, box, _ = ref_prompts(images[1])
    request = dict(image=images[0], text='the red circle', visual_prompts=[mask, box], points=[(30, 30, 1)])
    got = answer_of(inferencer, request)
    with torch.no_grad():
        [pred] = inferencer.model.test_step(inferencer.collate_fn([inferencer.pack(request)]))
    assert np.array_equal(got['union_mask'], pred.pred_sem_seg.sem_seg[0].numpy() > 0)
    assert got['no_target'] == bool(pred.pred_no_target)
    np.testing.assert_allclose(got['scores'], pred.pred_instances.scores.numpy(), atol=1e-6)
    np.testing.assert_allclose(got['no_target_score'], float(pred.pred_no_target_score), atol=1e-6)
    assert got['masks'].shape == (len(got['scores']), *mmcv.imread(images[0]).shape[:2])


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
        out = answer_of(inferencer, target, **kwargs)
        assert out['union_mask'].shape == (h, w) and out['union_mask'].dtype == bool
        assert out['masks'].shape[1:] == (h, w) and len(out['masks']) == len(out['scores'])
        assert isinstance(out['no_target'], bool) and 0.0 <= out['no_target_score'] <= 1.0
        if out['no_target']:
            assert len(out['masks']) == 0 and not out['union_mask'].any()
        assert out['inputs'] == dict(image=target, **kwargs)


def test_batches_equal_single_calls_and_references_are_encoded_once(inferencer, images):
    mask = ref_prompts(images[1])[0]
    items = [dict(image=p, text='the blue square', visual_prompts=[mask]) for p in images]
    inferencer.clear_cache()
    before = inferencer.num_reference_passes
    batched = inferencer(items, batch_size=2)['predictions']
    assert inferencer.num_reference_passes - before == 1  # one reference, four targets: one pass
    singles = [answer_of(inferencer, i['image'], text=i['text'], visual_prompts=i['visual_prompts']) for i in items]
    assert inferencer.num_reference_passes - before == 1
    for a, b in zip(batched, singles):
        assert np.array_equal(a['union_mask'], b['union_mask']) and a['no_target'] == b['no_target']
        np.testing.assert_allclose(a['scores'], b['scores'], atol=1e-5)
    # Without the cache every target pays for the reference again, and the answers do not change.
    uncached = OmniRISInferencer.__new__(OmniRISInferencer)
    uncached.__dict__.update(inferencer.__dict__, token_cache=BytesLRUCache(0), num_reference_passes=0)
    again = uncached(items, batch_size=2)['predictions']
    assert uncached.num_reference_passes == len(items)
    assert all(np.array_equal(a['union_mask'], b['union_mask']) for a, b in zip(again, batched))


def test_the_reference_cache_stays_within_its_budget_in_a_server_like_loop(inferencer):
    """10,000 distinct references, one after another, as a long-running web demo sees them: the
    cache never holds more than its budget, keeps the most recent ones and encodes an evicted one
    again."""
    server = OmniRISInferencer.__new__(OmniRISInferencer)
    token_bytes = 4 * 4 * 64  # 4 tokens of 64 float32
    server.__dict__.update(inferencer.__dict__, token_cache=BytesLRUCache(100 * token_bytes), num_reference_passes=0)
    server._encode_reference = lambda ref, prompt: torch.full((4, 64), float(ref.flatten()[0]))
    for i in range(10_000):
        tokens = server._tokens(f'ref{i}', torch.full((1, 1), float(i)), None)
        assert tokens[0, 0] == i
        assert server.token_cache.nbytes <= 100 * token_bytes
    assert len(server.token_cache) == 100 and server.num_reference_passes == 10_000
    assert server._tokens('ref9999', torch.zeros(1, 1), None)[0, 0] == 9999  # kept: no pass
    assert server.num_reference_passes == 10_000
    assert server._tokens('ref0', torch.full((1, 1), 5.0), None)[0, 0] == 5.0  # evicted: encoded again
    assert server.num_reference_passes == 10_001
    assert inferencer_module.DEFAULT_TOKEN_CACHE_BYTES == inferencer.token_cache.max_bytes == 64 * 2**20


def test_bad_prompts_are_named(inferencer, images):
    mask = ref_prompts(images[1])[0]
    with pytest.raises(ValueError, match='input 0 visual prompt 0: give image= and exactly one of'):
        inferencer(images[0], visual_prompts=[dict(mask, box=(0, 0, 5, 5))])
    with pytest.raises(ValueError, match=r'input 0 visual prompt 0 mask: it is \(3, 3\) but the reference image is'):
        inferencer(images[0], visual_prompts=[dict(image=images[1], mask=np.ones((3, 3)))])
    with pytest.raises(ValueError, match='selects no pixel'):
        inferencer(images[0], visual_prompts=[dict(image=images[1], mask=np.zeros_like(mask['mask']))])
    with pytest.raises(ValueError, match='give a text, visual prompts and/or prompts on the target'):
        inferencer(images[0])
    with pytest.raises(FileNotFoundError, match='input 0: cannot read'):
        inferencer('/nonexistent.jpg', text='x')
    with pytest.raises(ValueError, match=r"input 1: a request is a dict of image= .* got \['image', 'txt'\]"):
        inferencer([dict(image=images[0], text='x'), dict(image=images[0], txt='x')])
    with pytest.raises(ValueError, match="unknown argument {'score_thr'}"):
        inferencer(images[0], text='x', score_thr=0.5)


def test_a_folder_with_progress_pictures_and_json_answers(inferencer, images, tmp_path, monkeypatch):
    folder = osp.dirname(images[0])
    n = len(glob.glob(osp.join(folder, '*.png')))
    bars = []
    real_track = inferencer_module.track
    monkeypatch.setattr(inferencer_module, 'track', lambda it, **kw: bars.append(kw) or real_track(it, **kw))
    # One batch: no progress bar.
    inferencer(images[0], text='the red circle')
    assert bars == []
    sub = tmp_path / 'targets'
    sub.mkdir()
    for p in images[:3]:
        mmcv.imwrite(mmcv.imread(p), str(sub / osp.basename(p)))
    (sub / 'notes.txt').write_text('not an image')
    out = inferencer(str(sub), text='the red circle', out_dir=str(tmp_path / 'out'), no_save_pred=False)
    assert bars == [dict(description='Inference', total=3)] and n >= 3
    answers = out['predictions']
    assert [a['inputs']['image'] for a in answers] == [str(sub / osp.basename(p)) for p in sorted(images[:3])]
    pictures = sorted(glob.glob(str(tmp_path / 'out' / 'vis' / '*.png')))
    assert [osp.basename(p) for p in pictures] == sorted(osp.basename(p) for p in images[:3])
    assert out['visualization'] is None  # written, not returned
    for answer in answers:
        stem = osp.splitext(osp.basename(answer['inputs']['image']))[0]
        with open(tmp_path / 'out' / 'preds' / f'{stem}.json') as f:
            saved = json.load(f)
        union = mask_utils.decode(dict(saved['union_mask'], counts=saved['union_mask']['counts'].encode()))
        assert np.array_equal(union > 0, answer['union_mask'])
        assert len(saved['masks']) == len(answer['masks'])
        for rle, mask in zip(saved['masks'], answer['masks']):
            assert np.array_equal(mask_utils.decode(dict(rle, counts=rle['counts'].encode())) > 0, mask)
        assert saved['scores'] == pytest.approx(answer['scores'].tolist(), abs=1e-7)
        assert saved['no_target'] is answer['no_target'] and saved['prompt_types'] == ['text']


def test_pictures_returned_and_datasamples(inferencer, images, tmp_path):
    mask = ref_prompts(images[1])[0]
    target = mmcv.imread(images[0])
    out = inferencer([dict(image=target, text='the red circle', visual_prompts=[mask])], return_vis=True,
                     out_dir=str(tmp_path))  # fmt: skip
    [picture] = out['visualization']
    assert picture.shape[0] == 360 + 28  # panels at the visualizer's height, plus the caption strip
    [written] = glob.glob(str(tmp_path / 'vis' / '*.png'))
    assert osp.basename(written) == '00000000.png'  # an array has no name: its input index
    assert np.array_equal(mmcv.imread(written, channel_order='rgb'), picture)
    [sample] = inferencer(images[0], text='the red circle', return_datasamples=True)['predictions']
    assert isinstance(sample, DetDataSample) and sample.prompt_types == ['text']
    assert np.array_equal(
        sample.pred_sem_seg.sem_seg[0].numpy() > 0,
        answer_of(inferencer, images[0], text='the red circle')['union_mask'],
    )


def test_a_model_name_of_the_model_index_builds_its_config_and_loads_its_weights(images, tmp_path, monkeypatch):
    by_name = OmniRISInferencer('omnisegnet_tiny_omnishapes', device='cpu')
    assert by_name.cfg.filename == CONFIG
    # A metafile entry with Weights: they are loaded.
    torch.manual_seed(3)
    model = OmniRISInferencer(CONFIG, device='cpu').model
    ckpt = tmp_path / 'tiny.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    (tmp_path / 'configs').mkdir()
    (tmp_path / 'model-index.yml').write_text('Import:\n  - meta.yml\n')
    (tmp_path / 'meta.yml').write_text(
        f'Models:\n  - Name: tiny_trained\n    Alias: [tiny]\n    Config: {CONFIG}\n    Weights: {ckpt}\n'
    )
    monkeypatch.setattr(OmniRISInferencer, '_get_repo_or_mim_dir', staticmethod(lambda scope: str(tmp_path)))
    loaded = OmniRISInferencer('Tiny', device='cpu')
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.model.state_dict().values()))
    with pytest.raises(ValueError, match=r"'nothing' is neither a config file nor a model name .* tiny_trained"):
        OmniRISInferencer('nothing', device='cpu')


def test_demo_command_line(images, tmp_path):
    mask = np.zeros(mmcv.imread(images[1]).shape[:2], np.uint8)
    mask[10:40, 10:40] = 255
    mmcv.imwrite(mask, str(tmp_path / 'mask.png'))
    cmd = [sys.executable, DEMO, *images[:3], '--model', CONFIG]
    cmd += ['--text', 'the red circle', '--visual', images[1], 'mask', str(tmp_path / 'mask.png')]
    cmd += ['--visual', images[2], 'box', '5,5,60,60', '--out-dir', str(tmp_path / 'out'), '--batch-size', '2']
    out = subprocess.run([*cmd, '--device', 'cpu'], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert '3 target(s) in' in out.stdout and '2 reference pass(es) for 2 reference(s)' in out.stdout
    assert sum(images[i] in out.stdout for i in range(3)) == 3
    assert len(glob.glob(str(tmp_path / 'out' / 'vis' / '*.png'))) == 3
    assert len(glob.glob(str(tmp_path / 'out' / 'preds' / '*.json'))) == 3
    # A folder of targets, by model name, from another directory.
    folder = tmp_path / 'targets'
    folder.mkdir()
    for p in images[:2]:
        mmcv.imwrite(mmcv.imread(p), str(folder / osp.basename(p)))
    cmd = [sys.executable, DEMO, str(folder), '--model', 'omnisegnet_tiny_omnishapes', '--text', 'circles',
           '--device', 'cpu', '--out-dir', str(tmp_path / 'folder'), '--no-save-vis']  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert '2 target(s) in' in out.stdout and not osp.exists(tmp_path / 'folder' / 'vis')
    assert len(glob.glob(str(tmp_path / 'folder' / 'preds' / '*.json'))) == 2


def test_demo_prompts_on_the_target(images, tmp_path):
    h, w = mmcv.imread(images[0]).shape[:2]
    strokes = np.zeros((h, w), np.uint8)
    strokes[h // 3, w // 4 : w // 2] = 255
    mmcv.imwrite(strokes, str(tmp_path / 'strokes.png'))
    cmd = [sys.executable, DEMO, '--model', CONFIG, '--device', 'cpu']
    on_target = ['--click', '30,30,1', '--click', '5,5,0', '--box', '10,10,50,50']
    on_target += ['--scribble', str(tmp_path / 'strokes.png'), '--out-dir', str(tmp_path / 'out')]
    on_target += ['--negative', images[1], 'box', '5,5,40,40']  # and a negative exemplar
    out = subprocess.run([*cmd, images[0], *on_target], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert '1 target(s) in' in out.stdout and len(glob.glob(str(tmp_path / 'out' / 'vis' / '*.png'))) == 1
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
        out = answer_of(inferencer, images[0], text='the red circle')
    finally:
        cfg.clear()
        cfg.update(saved)
    h, w = mmcv.imread(images[0]).shape[:2]
    assert out['no_target'] is True and out['union_mask'].shape == (h, w) and not out['union_mask'].any()
    assert len(out['masks']) == len(out['scores']) == 0
    assert answer_of(inferencer, images[0], text='the red circle')['no_target_score'] == out['no_target_score']


def test_prompts_on_the_target_and_the_refinement_loop(inferencer, images):
    target = images[0]
    img = mmcv.imread(target)
    h, w = img.shape[:2]
    scribble = np.zeros((h, w), np.uint8)
    scribble[h // 2, w // 4 : w // 2] = 1
    prompts = dict(text='the red circle', points=[(w // 3, h // 3, 1), (5, 5, 0)], target_box=(2, 3, 40, 30))
    [sample] = inferencer(target, return_datasamples=True, **prompts)['predictions']
    assert sample.prompt_types == ['text', 'click', 'neg_click', 'target_box']
    answer = answer_of(inferencer, target, **prompts)
    assert answer['union_mask'].shape == (h, w)
    # The loop: the same prompts and one more click.
    passes = inferencer.num_reference_passes
    again = inferencer.refine(answer, (w // 2, h // 2, 0))
    assert again['inputs']['points'] == [(w // 3, h // 3, 1), (5, 5, 0), (w // 2, h // 2, 0)]
    [resample] = inferencer(again['inputs'], return_datasamples=True)['predictions']
    assert resample.prompt_types == sample.prompt_types
    # the positive-click and box prompts are unchanged: cached; the negative clicks changed: one new pass.
    assert inferencer.num_reference_passes == passes + 1
    [only] = inferencer(target, target_scribble=scribble, return_datasamples=True)['predictions']
    assert only.prompt_types == ['target_scribble']
    with pytest.raises(ValueError, match='positive click'):
        inferencer(target, points=[(3, 3, 0)])
    with pytest.raises(ValueError, match='outside'):
        inferencer(target, points=[(w + 3, 3, 1)])


def test_a_negative_exemplar_reuses_the_reference_tokens_and_changes_the_answer(inferencer, images):
    pos, ref = ref_prompts(images[1])[0], ref_prompts(images[2])[1]
    plain = answer_of(inferencer, images[0], visual_prompts=[pos, ref])
    passes = inferencer.num_reference_passes
    negative = answer_of(inferencer, images[0], visual_prompts=[pos, dict(ref, negative=True)])
    assert inferencer.num_reference_passes == passes  # the tokens of a reference do not depend on the flag
    assert negative['no_target_score'] != plain['no_target_score']
