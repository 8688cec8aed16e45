"""PASCAL-5i one-shot episodes on real VOC photos and masks (../shared/data/voc2012_sample)."""

import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from conftest import REPO, shared
from mmdet.registry import METRICS
from mmengine.config import Config
from mmengine.structures import PixelData
from PIL import Image

from omniris_mm.datasets import OmniDataError, Pascal5iDataset


def voc_colormap():
    cmap = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, rgb = i, [0, 0, 0]
        for bit in range(8):
            for ch in range(3):
                rgb[ch] |= ((c >> ch) & 1) << (7 - bit)
            c >>= 3
        cmap[i] = rgb
    return cmap


# Copies of each photo: its mirror (the voc_root fixture), and crops of it (voc_root6, for 5-shot:
# every class then has 5 other images). Each copy crops the label map like the image.
VARIANTS = {'': (False, 0), '_m': (True, 0), '_c': (False, 24), '_cm': (True, 24), '_d': (False, 48), '_dm': (True, 48)}


def build_voc(root, variants):
    """VOC layout: JPEGImages/, SegmentationClassAug/ (class-index PNGs), ImageSets/Segmentation/val.txt."""
    src = shared('voc2012_sample')
    for sub in ('JPEGImages', 'SegmentationClassAug', 'ImageSets/Segmentation'):
        (root / sub).mkdir(parents=True)
    lut = {tuple(c): i for i, c in enumerate(voc_colormap())}
    names = []
    for n in ('1', '23', '114'):
        rgb = mmcv.imread(osp.join(src, f'{n}_target.png'), channel_order='rgb')
        label = np.vectorize(lambda *c: lut.get(c, 255), otypes=[np.uint8])(rgb[..., 0], rgb[..., 1], rgb[..., 2])
        img = mmcv.imread(osp.join(src, f'{n}_image.png'))
        for suffix in variants:
            flip, crop = VARIANTS[suffix]
            name = n + suffix
            im, lab = img[crop:, crop:], label[crop:, crop:]
            mmcv.imwrite(im[:, ::-1] if flip else im, str(root / 'JPEGImages' / f'{name}.jpg'))
            Image.fromarray(np.ascontiguousarray(lab[:, ::-1] if flip else lab)).save(
                root / 'SegmentationClassAug' / f'{name}.png'
            )
            names.append(name)
    (root / 'ImageSets/Segmentation/val.txt').write_text('\n'.join(names) + '\n')
    return str(root)


@pytest.fixture(scope='module')
def voc_root(tmp_path_factory):
    """Each photo and its mirror (NAME_m), so that every class has a second image for the support."""
    return build_voc(tmp_path_factory.mktemp('voc'), ('', '_m'))


@pytest.fixture(scope='module')
def voc_root6(tmp_path_factory):
    return build_voc(tmp_path_factory.mktemp('voc6'), tuple(VARIANTS))


# The evaluation config's own pipeline (480 x 480 input, ground truth at the original size).
PIPELINE = Config.fromfile(osp.join(REPO, 'configs', 'omnisegnet', 'eval', 'pascal5i_fold0.py')).test_pipeline


def test_episodes_pair_a_query_with_another_image_of_its_class(voc_root):
    ds = Pascal5iDataset(fold=0, data_root=voc_root, num_episodes=10, pipeline=PIPELINE)
    labels = {
        n: np.asarray(Image.open(osp.join(voc_root, 'SegmentationClassAug', f'{n}.png')))
        for n in ('1', '1_m', '23', '23_m', '114', '114_m')
    }
    fold0 = {n for n, lab in labels.items() if set(np.unique(lab)) & set(range(1, 6))}
    assert len(ds) == 10 and len(fold0) >= 2
    again = Pascal5iDataset(fold=0, data_root=voc_root, num_episodes=10, pipeline=PIPELINE)
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert info['record_id'] == again.get_data_info(i)['record_id']  # the same episodes on every run
        query, cls = info['img_id'], info['category_id']
        [support] = info['visual_prompts']
        assert query in fold0 and cls in range(1, 6) and support['img_id'] != query
        assert (labels[support['img_id']] == cls).any() and (labels[query] == cls).any()
        packed = ds[i]['data_samples']
        gt = packed.gt_sem_seg.sem_seg[0].numpy()
        lab = labels[query]
        assert gt.shape == lab.shape  # ground truth at the original size
        assert np.array_equal(gt == 1, lab == cls) and np.array_equal(gt == 255, lab == 255)
        ref_mask = packed.ref_masks[0][0].numpy().astype(bool)
        assert ref_mask.sum() > 0 and packed.metainfo['category_id'] == cls
        assert np.array_equal(packed.prompt_maps[0][0].numpy() > 0, ref_mask)  # a mask prompt: the support mask


def test_oracle_and_empty_predictions_score_as_expected(voc_root):
    ds = Pascal5iDataset(fold=0, data_root=voc_root, num_episodes=6, pipeline=PIPELINE)
    metric = METRICS.build(dict(type='FewShotSegMetric'))
    empty = METRICS.build(dict(type='FewShotSegMetric'))
    background = valid = 0
    for i in range(len(ds)):
        sample = ds[i]['data_samples']
        gt = sample.gt_sem_seg.sem_seg
        background += int((gt == 0).sum())
        valid += int((gt != 255).sum())
        sample.pred_sem_seg = PixelData(sem_seg=(gt == 1).to(gt.dtype))
        metric.process({}, [sample])
        sample.pred_sem_seg = PixelData(sem_seg=gt.new_zeros(gt.shape))
        empty.process({}, [sample])
    assert metric.evaluate(len(ds))['mIoU'] == pytest.approx(100.0)
    scores = empty.evaluate(len(ds))
    # Predicting background everywhere: foreground IoU 0, background IoU = background / valid pixels.
    assert scores['mIoU'] == 0.0 and scores['FB-IoU'] == pytest.approx(100 * (0 + background / valid) / 2)


def test_split_file_and_bad_input(voc_root, tmp_path):
    split = tmp_path / 'fold0.txt'
    split.write_text('1__01\n1_m__01\n23__20\n')
    ds = Pascal5iDataset(fold=0, data_root=voc_root, split_file=str(split), num_episodes=4, pipeline=PIPELINE)
    assert {ds.get_data_info(i)['img_id'] for i in range(4)} == {'1', '1_m'}  # class 20 is not in fold 0
    split.write_text('1__01\n')
    with pytest.raises(OmniDataError, match=r'fold0.txt fold 0 episode 0 \(query 1, class 1\): no other image'):
        Pascal5iDataset(fold=0, data_root=voc_root, split_file=str(split), pipeline=PIPELINE)
    split.write_text('1_01\n')
    with pytest.raises(OmniDataError, match='line 1: expected NAME__CLASS'):
        Pascal5iDataset(fold=0, data_root=voc_root, split_file=str(split), pipeline=PIPELINE)
    with pytest.raises(ValueError, match='fold'):
        Pascal5iDataset(fold=4, data_root=voc_root, pipeline=PIPELINE)


def test_metric_table_names_the_classes(voc_root, monkeypatch):
    from mmengine.logging import MMLogger

    ds = Pascal5iDataset(fold=0, data_root=voc_root, num_episodes=4, pipeline=PIPELINE)
    metric = METRICS.build(dict(type='FewShotSegMetric'))
    metric.dataset_meta = ds.metainfo
    for i in range(len(ds)):
        sample = ds[i]['data_samples']
        sample.pred_sem_seg = PixelData(sem_seg=(sample.gt_sem_seg.sem_seg == 1).to(torch.uint8))
        metric.process({}, [sample])
    logged = []
    monkeypatch.setattr(MMLogger.get_current_instance(), 'info', logged.append)
    metric.evaluate(len(ds))
    [table] = [m for m in logged if m.startswith('Few-shot results:')]
    classes = {ds.metainfo['classes'][ds.get_data_info(i)['category_id'] - 1] for i in range(len(ds))}
    assert classes and all(f'{c:<16}' in table for c in classes)
    assert 'mIoU                    4   100.00' in table and 'aeroplane               2   100.00' in table


def test_five_shot_episodes_are_the_one_shot_episodes_with_four_more_supports(voc_root, voc_root6):
    one = Pascal5iDataset(fold=0, data_root=voc_root6, num_episodes=12, pipeline=PIPELINE)
    # without the resize, the reference masks keep the label maps' size
    unresized = [t for t in PIPELINE if t['type'] != 'OmniResize']
    five = Pascal5iDataset(fold=0, data_root=voc_root6, num_episodes=12, num_shots=5, pipeline=unresized)
    for i in range(len(one)):
        a, b = one.get_data_info(i), five.get_data_info(i)
        assert (a['img_id'], a['category_id']) == (b['img_id'], b['category_id'])
        supports = [s['img_id'] for s in b['visual_prompts']]
        # the 1-shot support first, then the other 4 copies of the query's photo (its class is in no other)
        photo = a['img_id'].split('_')[0]
        assert supports[0] == a['visual_prompts'][0]['img_id']
        assert sorted(supports) == sorted(photo + v for v in VARIANTS if photo + v != a['img_id'])
        packed = five[i]['data_samples']
        assert packed.prompt_types == ['mask'] * 5 and len(packed.ref_masks) == 5
        for s, m in zip(supports, packed.ref_masks):
            label = np.asarray(Image.open(osp.join(voc_root6, 'SegmentationClassAug', f'{s}.png')))
            assert np.array_equal(m[0].numpy().astype(bool), label == a['category_id'])  # the class mask of each
    # With only the mirror, no class has the 2 other images a 2-shot episode needs.
    message = r'episode 0 \(query 1, class 1\): 2-shot needs 2 other images of class 1, there are 1'
    with pytest.raises(OmniDataError, match=message):
        Pascal5iDataset(fold=0, data_root=voc_root, num_episodes=2, num_shots=2, pipeline=[])
