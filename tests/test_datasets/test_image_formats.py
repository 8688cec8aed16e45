"""Real photos in the forms users have them: a JPEG with an EXIF orientation tag stays aligned with
its masks (pixels as stored, for target and reference alike); grayscale and CMYK JPEGs and palette
PNGs load as 3-channel images."""

import json
import os.path as osp

import mmcv
import numpy as np
import pycocotools.mask as mask_utils
import pytest
from conftest import REPO, shared
from mmengine.config import Config
from PIL import Image

from omniris_mm.datasets import CocoVisualPromptDataset, OmniDataError

IDS = (142238, 439180)
CONFIG = Config.fromfile(osp.join(REPO, 'configs', '_base_', 'datasets', 'omniref_joint.py'))
# The configs' loaders, without resizing: the loaded arrays are compared with the files.
LOADERS = [t for t in CONFIG.train_pipeline if t['type'] in ('LoadImageFromFile', 'LoadVisualPrompts')]
PIPELINE = LOADERS[:1] + [dict(type='LoadOmniAnnotations')] + LOADERS[1:]
PIPELINE += [dict(type='SynthesizePromptMaps'), dict(type='PackOmniInputs')]


def photo(img_id):
    return Image.open(osp.join(shared('coco_val2017_sample'), f'{img_id:012d}.jpg'))


def dataset(root, pipeline=PIPELINE):
    return CocoVisualPromptDataset(
        ann_file=osp.join(root, 'instances.json'),
        data_prefix=dict(img_path=str(root)),
        category_ids=[1],
        pipeline=pipeline,
        test_mode=True,
    )


def folder(tmp_path, write):
    """The COCO sample with each image written by ``write(PIL image, path)``; returns the
    folder and, per image id, what the file should decode to (BGR)."""
    with open(osp.join(shared('coco_val2017_sample'), 'instances.json')) as f:
        inst = json.load(f)
    expected = {}
    for img in inst['images']:
        name = osp.splitext(img['file_name'])[0] + write.ext
        img['file_name'] = name
        expected[img['id']] = write(photo(img['id']), str(tmp_path / name))
    (tmp_path / 'instances.json').write_text(json.dumps(inst))
    return tmp_path, expected, {a['id']: a for a in inst['annotations']}


def person_union(anns, img_id, shape):
    masks = [mask_utils.decode(a['segmentation']) for a in anns.values()
             if a['image_id'] == img_id and a['category_id'] == 1 and not a['iscrowd']]  # fmt: skip
    assert masks[0].shape == shape
    return np.any(masks, 0)


def rgb_to_bgr(img):
    return np.asarray(img.convert('RGB'))[..., ::-1]


def with_orientation(orientation):
    def write(img, path):
        exif = Image.Exif()
        exif[0x0112] = orientation  # the tag only; the stored pixels are the photo's
        img.save(path, quality=95, exif=exif.tobytes())
        plain = path + '.plain.jpg'
        img.save(plain, quality=95)  # the same encoder on the same pixels, no tag
        return mmcv.imread(plain, flag='color_ignore_orientation')

    write.ext = '.jpg'
    return write


@pytest.mark.parametrize('orientation', [3, 6])  # rotated 180; rotated 90 (width and height swap)
def test_an_orientation_tag_keeps_image_and_masks_aligned(tmp_path, orientation):
    root, expected, anns = folder(tmp_path, with_orientation(orientation))
    ds = dataset(root)
    for idx in range(len(ds)):
        info = ds.get_data_info(idx)
        if not info['instances']:
            continue
        out = ds[idx]
        img_id = info['img_id']
        sample = out['data_samples']
        np.testing.assert_array_equal(out['inputs'].numpy().transpose(1, 2, 0), expected[img_id])
        shape = expected[img_id].shape[:2]
        np.testing.assert_array_equal(sample.gt_sem_seg.sem_seg[0].numpy() == 1, person_union(anns, img_id, shape))
        # The reference (the other photo, also tagged) is read by the same rule: its mask fits it.
        ref_id = sample.ref_metas[0]['img_id']
        np.testing.assert_array_equal(sample.ref_imgs[0].numpy().transpose(1, 2, 0), expected[ref_id])
        ref_mask = sample.ref_masks[0][0].numpy().astype(bool)
        ann = anns[sample.ref_metas[0]['ann_id']]
        np.testing.assert_array_equal(ref_mask, mask_utils.decode(ann['segmentation']).astype(bool))
    if orientation == 6:
        # mmcv's default ('color') applies the tag to the image only: the masks would not fit it.
        stock = [dict(t, color_type='color') if t['type'] == 'LoadImageFromFile' else t for t in PIPELINE]
        ds = dataset(root, stock)
        idx = next(i for i in range(len(ds)) if ds.get_data_info(i)['instances'])
        with pytest.raises(OmniDataError, match='but its annotation says'):
            ds[idx]


def gray(img, path):
    img.convert('L').save(path, quality=95)
    return np.repeat(np.asarray(Image.open(path).convert('L'))[..., None], 3, 2)


def cmyk(img, path):
    img.convert('CMYK').save(path, quality=95)
    return rgb_to_bgr(Image.open(path))


def palette(img, path):
    img.convert('P', palette=Image.Palette.ADAPTIVE, colors=64).save(path)
    return rgb_to_bgr(Image.open(path))


gray.ext = cmyk.ext = '.jpg'
palette.ext = '.png'


@pytest.mark.parametrize('write', [gray, cmyk, palette], ids=['grayscale-jpeg', 'cmyk-jpeg', 'palette-png'])
def test_other_colour_modes_load_as_three_channels(tmp_path, write):
    root, expected, anns = folder(tmp_path, write)
    ds = dataset(root)
    idx = next(i for i in range(len(ds)) if ds.get_data_info(i)['instances'])
    out = ds[idx]
    img_id = ds.get_data_info(idx)['img_id']
    img = out['inputs'].numpy().transpose(1, 2, 0)
    ref = out['data_samples'].ref_imgs[0].numpy().transpose(1, 2, 0)
    # Decoders differ by rounding (libjpeg in OpenCV and in Pillow): at most 2 levels in any pixel.
    tol = 0 if write is palette else 2
    assert img.shape == expected[img_id].shape and img.dtype == np.uint8
    assert np.abs(img.astype(int) - expected[img_id]).max() <= tol
    ref_id = out['data_samples'].ref_metas[0]['img_id']
    assert np.abs(ref.astype(int) - expected[ref_id]).max() <= tol
    shape = img.shape[:2]
    np.testing.assert_array_equal(
        out['data_samples'].gt_sem_seg.sem_seg[0].numpy() == 1, person_union(anns, img_id, shape)
    )
