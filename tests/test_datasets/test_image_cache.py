"""The decoded-image cache: the same pixels as mmcv's loader, fresh copies, a rewritten file read
again, a bound in bytes, local files only, clear errors, and the quickstart's samples unchanged."""

import multiprocessing
import os
import os.path as osp
import pickle
import random

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO, shared
from mmcv.transforms import LoadImageFromFile
from mmengine.config import Config
from mmengine.registry import init_default_scope

from omniris_mm.datasets import OmniDataError
from omniris_mm.datasets.transforms import (
    IMAGE_CACHE,
    CachedLoadImageFromFile,
    DecodedImageCache,
    LoadVisualPrompts,
)
from omniris_mm.datasets.transforms.image_cache import cache_key

MIB = 2**20


@pytest.fixture(autouse=True)
def fresh_cache():
    IMAGE_CACHE.clear()
    IMAGE_CACHE.max_bytes = 0
    yield
    IMAGE_CACHE.clear()
    IMAGE_CACHE.max_bytes = 0


def photo():
    return osp.join(shared('coco_val2017_sample'), '000000142238.jpg')


@pytest.mark.parametrize('color_type', ['color', 'color_ignore_orientation', 'grayscale', 'unchanged'])
def test_same_pixels_as_mmcv_and_fresh_copies(color_type):
    path = photo()
    stock = LoadImageFromFile(color_type=color_type).transform({'img_path': path})['img']
    cached = CachedLoadImageFromFile(color_type=color_type, cache_bytes=64 * MIB)
    outs = []
    for _ in range(3):
        outs.append(cached.transform({'img_path': path}))
        outs[-1]['img'][:] = 0  # a later transform writing in place, into a miss and then into a hit
    for out in outs:
        assert out['img_shape'] == out['ori_shape'] == stock.shape[:2]
    np.testing.assert_array_equal(cached.transform({'img_path': path})['img'], stock)
    assert outs[-1]['img'].dtype == stock.dtype and outs[-1]['img'].flags.writeable
    assert (IMAGE_CACHE.misses, IMAGE_CACHE.hits, len(IMAGE_CACHE)) == (1, 3, 1)
    assert IMAGE_CACHE.nbytes == stock.nbytes
    floats = CachedLoadImageFromFile(color_type=color_type, to_float32=True).transform({'img_path': path})['img']
    assert floats.dtype == np.float32 and np.array_equal(floats, stock.astype(np.float32))


def test_decoding_settings_are_kept_apart(tmp_path):
    path = str(tmp_path / 'a.png')
    img = np.random.default_rng(0).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    cv2.imwrite(path, img)
    gray = CachedLoadImageFromFile(color_type='grayscale').transform({'img_path': path})['img']
    color = CachedLoadImageFromFile(color_type='color').transform({'img_path': path})['img']
    np.testing.assert_array_equal(gray, cv2.imread(path, cv2.IMREAD_GRAYSCALE))
    assert gray.shape == (6, 7)
    np.testing.assert_array_equal(color, img)
    assert IMAGE_CACHE.misses == 2 and len(IMAGE_CACHE) == 2


def test_no_cache_when_the_bound_is_zero():
    path = photo()
    out = CachedLoadImageFromFile(cache_bytes=0).transform({'img_path': path})
    np.testing.assert_array_equal(out['img'], cv2.imread(path))
    assert len(IMAGE_CACHE) == 0 and IMAGE_CACHE.misses == 0


def test_rewritten_file_is_read_again(tmp_path):
    path = str(tmp_path / 'a.png')
    a = np.full((8, 9, 3), 10, np.uint8)
    b = np.full((8, 9, 3), 200, np.uint8)  # same size on disk is not assumed: the mtime moves too
    cv2.imwrite(path, a)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    load = CachedLoadImageFromFile(cache_bytes=MIB)
    np.testing.assert_array_equal(load.transform({'img_path': path})['img'], a)
    cv2.imwrite(path, b)
    os.utime(path, ns=(2_000_000_000, 2_000_000_000))
    np.testing.assert_array_equal(load.transform({'img_path': path})['img'], b)
    assert IMAGE_CACHE.hits == 0 and IMAGE_CACHE.misses == 2


def test_lru_bound_in_bytes():
    cache = DecodedImageCache(max_bytes=250)
    arrays = {k: np.full(100, i, np.uint8) for i, k in enumerate('abc')}
    cache.put('a', arrays['a'])
    cache.put('b', arrays['b'])
    assert cache.get('a') is not None  # 'a' is now the most recent: 'b' goes first
    cache.put('c', arrays['c'])
    assert cache.get('b') is None and len(cache) == 2 and cache.nbytes == 200
    np.testing.assert_array_equal(cache.get('a'), arrays['a'])
    np.testing.assert_array_equal(cache.get('c'), arrays['c'])
    cache.put('big', np.zeros(251, np.uint8))  # larger than the bound: not kept, nothing evicted
    assert cache.get('big') is None and len(cache) == 2
    cache.put('a', np.zeros(50, np.uint8))  # replacing an entry counts its new size
    assert cache.nbytes == 150
    arrays['c'][:] = 99  # the cache holds its own copy
    assert cache.get('c')[0] == 2


def test_only_local_files_have_keys(tmp_path):
    path = str(tmp_path / 'a.png')
    cv2.imwrite(path, np.zeros((4, 4, 3), np.uint8))
    st = os.stat(path)
    assert cache_key(path, 'color', 'cv2', None) == (
        osp.abspath(path),
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        'color',
        'cv2',
    )
    assert cache_key(path, 'color', 'cv2', dict(backend='local')) is not None
    assert cache_key(path, 'color', 'cv2', dict(backend='petrel')) is None
    assert cache_key('http://example.com/a.png', 'color', 'cv2', None) is None
    assert cache_key(str(tmp_path / 'missing.png'), 'color', 'cv2', None) is None
    # the decoding settings are part of the key
    assert cache_key(path, 'grayscale', 'cv2', None) != cache_key(path, 'color', 'cv2', None)


def test_bad_files_name_the_file(tmp_path):
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'not an image at all')
    load = CachedLoadImageFromFile(cache_bytes=MIB)
    with pytest.raises(OmniDataError, match='broken.jpg is not a decodable image'):
        load.transform({'img_path': str(bad), 'record_id': 'x.json record 3'})
    assert CachedLoadImageFromFile(ignore_empty=True).transform({'img_path': str(bad)}) is None
    with pytest.raises(FileNotFoundError):
        load.transform({'img_path': str(tmp_path / 'missing.jpg')})
    assert CachedLoadImageFromFile(ignore_empty=True).transform({'img_path': str(tmp_path / 'missing.jpg')}) is None
    assert len(IMAGE_CACHE) == 0
    with pytest.raises(ValueError, match='backend_args'):
        CachedLoadImageFromFile(file_client_args=dict(backend='disk'))
    assert repr(load).endswith(f'backend_args=None, cache_bytes={MIB})')


def _read_twice_in_a_worker(payload):
    from omniris_mm.datasets.transforms import IMAGE_CACHE as worker_cache

    load, path = pickle.loads(payload)
    imgs = [load.transform({'img_path': path})['img'] for _ in range(2)]
    return imgs[1], worker_cache.max_bytes, worker_cache.hits


def test_a_spawned_worker_caches_with_the_configured_bound():
    path = photo()
    load = CachedLoadImageFromFile(cache_bytes=3 * MIB)
    payload = pickle.dumps((load, path))
    assert len(payload) < 2000  # the transform carries its settings, not the cache
    with multiprocessing.get_context('spawn').Pool(1) as pool:
        img, bound, hits = pool.apply(_read_twice_in_a_worker, (payload,))
    np.testing.assert_array_equal(img, cv2.imread(path, cv2.IMREAD_COLOR))
    assert (bound, hits) == (3 * MIB, 1)
    assert len(IMAGE_CACHE) == 0  # nothing was read in this process


def test_reference_images_through_the_cache():
    path = photo()
    prompt = dict(img_path=path, mask=[[10, 10, 60, 10, 60, 60, 10, 60]])
    plain = LoadVisualPrompts().transform({'visual_prompts': [dict(prompt)]})['visual_prompts'][0]
    assert len(IMAGE_CACHE) == 0
    load = LoadVisualPrompts(cache_bytes=64 * MIB)
    for _ in range(2):
        cached = load.transform({'visual_prompts': [dict(prompt)]})['visual_prompts'][0]
        np.testing.assert_array_equal(cached['img'], plain['img'])
        np.testing.assert_array_equal(cached['ref_mask'], plain['ref_mask'])
    assert (IMAGE_CACHE.misses, IMAGE_CACHE.hits) == (1, 1)
    # the target's loader with the same settings finds the reference's pixels
    CachedLoadImageFromFile(color_type='color_ignore_orientation').transform({'img_path': path})
    assert IMAGE_CACHE.hits == 2


def test_quickstart_samples_equal_with_and_without_the_cache(omnishapes):
    """Every source of the quickstart's config (text, visual, omni, target prompts, negative
    exemplars), twice over the same samples: the packed tensors equal those of mmcv's loader."""
    from mmengine.dataset import ConcatDataset
    from mmengine.registry import DATASETS

    init_default_scope('mmdet')
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'omnishapes', 'omnisegnet_tiny_2k_omnishapes_all.py'))

    def build(cached):
        sources = []
        for src in cfg.train_dataloader.dataset.datasets:
            src = src.copy()
            src.data_root = omnishapes + '/'
            steps = []
            for step in src.pipeline:
                step = dict(step)
                if not cached and step['type'] == 'CachedLoadImageFromFile':
                    step['type'] = 'LoadImageFromFile'
                    step.pop('cache_bytes')
                elif not cached and step['type'] == 'LoadVisualPrompts':
                    step.pop('cache_bytes', None)
                steps.append(step)
            assert not cached or steps[0]['type'] == 'CachedLoadImageFromFile'
            src.pipeline = steps
            sources.append(DATASETS.build(src))
        return ConcatDataset(sources)

    plain, cached = build(False), build(True)
    assert len(plain) == len(cached) and len(plain.datasets) == 5
    starts = np.cumsum([0] + [len(d) for d in plain.datasets[:-1]])
    indices = [int(s) + k for s in starts for k in (0, 1, 0)]  # each source, one sample read twice
    for i, idx in enumerate(indices):
        outs = []
        for ds in (plain, cached):
            random.seed(i)
            np.random.seed(i)
            torch.manual_seed(i)
            outs.append(ds[idx])
        a, b = outs
        assert torch.equal(a['inputs'], b['inputs'])
        sa, sb = a['data_samples'], b['data_samples']
        assert torch.equal(sa.gt_sem_seg.sem_seg, sb.gt_sem_seg.sem_seg)
        for key in ('ref_imgs', 'ref_masks'):
            va, vb = getattr(sa, key, None), getattr(sb, key, None)
            assert (va is None) == (vb is None)
            if va is not None:
                assert len(va) == len(vb) and all(torch.equal(x, y) for x, y in zip(va, vb))
    assert IMAGE_CACHE.hits > 0 and IMAGE_CACHE.max_bytes == cfg.image_cache
