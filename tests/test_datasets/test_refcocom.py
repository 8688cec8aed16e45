import json
import os
import os.path as osp
import re
import shutil
import sys

import numpy as np
import pytest
from conftest import REPO, shared
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from omniris_mm.datasets import SKIPPED_KEY, OmniDataError, RefCocoMDataset

sys.path.insert(0, osp.join(REPO, 'tools', 'analysis_tools'))

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='LoadOmniAnnotations'), dict(type='PackOmniInputs')]
FILES = [f'{s}_{t}' for s in ('val', 'testA', 'testB') for t in ('part_only', 'object_part')]


@pytest.fixture(scope='module')
def refcocom(tmp_path_factory):
    from make_part_samples import build_refcocom

    root = str(tmp_path_factory.mktemp('refcocom'))
    build_refcocom(shared('coco_val2017_sample'), root)
    return root


def records_of(root, name):
    with open(osp.join(root, 'annotations', f'{name}.json')) as f:
        return json.load(f)


def png(root, segment_id):
    return np.asarray(Image.open(osp.join(root, 'masks', f'{segment_id}.png'))) > 0


def dataset(root, name, **kwargs):
    init_default_scope('mmdet')
    return RefCocoMDataset(
        data_root=root, ann_file=f'annotations/{name}.json', pipeline=PIPELINE, test_mode=True, **kwargs
    )


@pytest.mark.parametrize('name', FILES)
def test_every_file_of_the_release_layout_gives_one_sample_per_sentence(refcocom, name):
    records = records_of(refcocom, name)
    # The fixture has both sentence forms and records with and without bbox/cat.
    assert {type(s) for r in records for s in r['sentences']} == {str, dict}
    expected = [(r, s if isinstance(s, str) else s['sent']) for r in records for s in r['sentences']]
    ds = dataset(refcocom, name)
    assert len(ds) == len(expected)
    for idx, (record, text) in enumerate(expected):
        sample = ds[idx]['data_samples']
        assert sample.text == text and sample.setting == '1v1' and not sample.gt_no_target
        assert osp.basename(sample.img_path) == record['img_name']
        gt = png(refcocom, record['segment_id'])
        np.testing.assert_array_equal(sample.gt_sem_seg.sem_seg[0].numpy() == 1, gt)
        assert len(sample.gt_instances) == 1
        np.testing.assert_array_equal(sample.gt_instances.masks.masks[0] > 0, gt)
        # The fixture's ids: objects from 1,000,000, their parts from 2,000,000.
        assert sample.granularity == ('part' if record['segment_id'] >= 2_000_000 else 'object')
    if name.endswith('part_only'):
        assert all(ds[i]['data_samples'].granularity == 'part' for i in range(len(ds)))


def test_a_record_tag_sets_the_granularity_and_an_untold_one_stays_unknown(refcocom, tmp_path):
    records = records_of(refcocom, 'val_object_part')[:4]
    records[0]['granularity'] = 'part'
    records[1]['is_part'] = False
    (tmp_path / 'annotations').mkdir()
    (tmp_path / 'annotations' / 'val_object_part.json').write_text(json.dumps(records))  # no part_only beside it
    os.symlink(osp.join(refcocom, 'masks'), tmp_path / 'masks')
    os.symlink(osp.join(refcocom, 'images'), tmp_path / 'images')
    ds = dataset(str(tmp_path), 'val_object_part')
    per_record = {}
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        per_record.setdefault(int(re.search(r'record (\d+)', info['record_id']).group(1)), info['granularity'])
    assert per_record == {0: 'part', 1: 'object', 2: None, 3: None}
    records[2]['granularity'] = 'wheel'
    (tmp_path / 'annotations' / 'val_object_part.json').write_text(json.dumps(records))
    with pytest.raises(OmniDataError, match=r'record 2 segment_id=\d+: granularity must be one of'):
        dataset(str(tmp_path), 'val_object_part')
    with pytest.raises(OmniDataError, match='cannot tell the setting from the file name'):
        (tmp_path / 'annotations' / 'val.json').write_text(json.dumps(records[:2]))
        dataset(str(tmp_path), 'val')
    assert len(dataset(str(tmp_path), 'val', setting='part_only')) > 0


def _copy_release(src, dst):
    shutil.copytree(src, dst, symlinks=True)
    return str(dst)


def test_bad_masks_are_named(refcocom, tmp_path):
    root = _copy_release(refcocom, tmp_path / 'r')
    records = records_of(root, 'val_part_only')
    missing = records[1]['segment_id']
    os.remove(osp.join(root, 'masks', f'{missing}.png'))
    with pytest.raises(OmniDataError, match=rf'record 1 segment_id={missing}: mask file not found: .*{missing}\.png'):
        dataset(root, 'val_part_only')
    # With on_invalid='skip' the record keeps its place in test mode and is counted.
    ds = dataset(root, 'val_part_only', on_invalid='skip')
    assert len(ds.skipped) == 1 and str(missing) in ds.skipped[0]
    assert SKIPPED_KEY in ds[1] and SKIPPED_KEY not in ds[0]
    shutil.copyfile(osp.join(refcocom, 'masks', f'{missing}.png'), osp.join(root, 'masks', f'{missing}.png'))
    # A mask of another size than its image, a grey (non-binary) one and an empty one: named when fetched.
    bad = {records[2]['segment_id']: np.full((10, 12), 255, np.uint8)}
    bad[records[3]['segment_id']] = (np.arange(40 * 40).reshape(40, 40) % 7 * 30).astype(np.uint8)
    bad[records[4]['segment_id']] = np.zeros((40, 40), np.uint8)
    for sid, arr in bad.items():
        Image.fromarray(arr).save(osp.join(root, 'masks', f'{sid}.png'))
    ds = dataset(root, 'val_part_only', on_invalid='skip')
    with pytest.raises(OmniDataError, match=r'record 2 .*is 427x640 but its annotation says 10x12'):
        dataset(root, 'val_part_only')[2]
    with pytest.raises(OmniDataError, match=rf'record 3 .*{records[3]["segment_id"]}\.png is not a binary mask'):
        ds.on_invalid = 'error'
        ds[3]
    with pytest.raises(OmniDataError, match=rf'record 4 .*{records[4]["segment_id"]}\.png is empty'):
        ds[4]


@pytest.mark.parametrize('name', FILES)
def test_the_oracle_scores_100_on_each_eval_config(refcocom, name):
    from eval_oracle import evaluate_oracle

    cfg = Config.fromfile(osp.join(REPO, 'configs', 'omnisegnet', 'eval', f'refcocom_{name}.py'))
    cfg.test_dataloader.dataset.data_root = refcocom
    cfg.test_dataloader.update(num_workers=0, persistent_workers=False)
    metrics = evaluate_oracle(cfg)
    assert metrics['mIoU'] == metrics['cIoU'] == metrics['gIoU'] == 100.0
    assert metrics['skipped'] == 0 and metrics['1v1/mIoU'] == 100.0
    assert metrics['part/mIoU'] == 100.0
    assert ('object/mIoU' in metrics) == name.endswith('object_part')


def test_the_eval_config_runs_the_model_and_its_miou_is_the_mean_per_sample_iou(refcocom, tmp_path):
    """configs/omnisegnet/eval/refcocom_val_object_part.py with the tiny model in place of Swin-B: the
    metric's mIoU / cIoU / part and object figures against a recomputation from the dumped answers
    and the mask files."""
    import pickle

    from mmengine.runner import Runner

    cfg = Config.fromfile(osp.join(REPO, 'configs', 'omnisegnet', 'eval', 'refcocom_val_object_part.py'))
    cfg.model = Config.fromfile(osp.join(REPO, 'configs', 'omnishapes', 'omnisegnet_tiny_omnishapes.py')).model
    cfg.test_dataloader.dataset.data_root = refcocom
    cfg.test_dataloader.update(num_workers=0, persistent_workers=False)
    dump = str(tmp_path / 'answers.pkl')
    cfg.test_evaluator = [cfg.test_evaluator, dict(type='DumpResults', out_file_path=dump)]
    cfg.work_dir, cfg.load_from = str(tmp_path / 'work'), None
    metrics = Runner.from_cfg(cfg).test()
    with open(dump, 'rb') as f:
        answers = pickle.load(f)
    records = records_of(refcocom, 'val_object_part')
    assert len(answers) == sum(len(r['sentences']) for r in records)
    iou, inter, union = {'part': [], 'object': []}, 0, 0
    for answer in answers:
        sid = int(re.search(r'segment_id=(\d+)', answer['record_id']).group(1))
        gt = png(refcocom, sid)
        pred = np.asarray(answer['pred_sem_seg']['sem_seg'][0]) > 0
        # A "no target" answer on a targeted sample (SPEC 4): I forced to 0, its pixels still in U, IoU 0.
        i = 0 if answer['pred_no_target'] else (pred & gt).sum()
        u = (pred | gt).sum()
        inter, union = inter + i, union + u
        iou['part' if sid >= 2_000_000 else 'object'].append(i / u)
    every = iou['part'] + iou['object']
    assert metrics['mIoU'] == pytest.approx(100 * np.mean(every), abs=1e-6)
    assert metrics['cIoU'] == pytest.approx(100 * inter / union, abs=1e-6)
    assert metrics['part/mIoU'] == pytest.approx(100 * np.mean(iou['part']), abs=1e-6)
    assert metrics['object/mIoU'] == pytest.approx(100 * np.mean(iou['object']), abs=1e-6)
