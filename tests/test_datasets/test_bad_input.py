"""Bad input gives a clear error naming the file and the record, or a counted skip when asked."""

import json
import os
import os.path as osp
import re
import shutil

import mmcv
import pytest
from conftest import PIPELINE, shared

from omniris_mm.datasets import SKIPPED_KEY, OmniDataError, OmniRefDataset


@pytest.fixture
def mini_copy(tmp_path):
    """A writable copy of the real mini set's annotation files, images linked."""
    src = shared('omniref_real_mini')
    for name in ('OmniRef.json', 'instances.json', 'SuppImageAnns.json'):
        shutil.copy(osp.join(src, name), tmp_path / name)
    os.symlink(osp.join(src, 'images'), tmp_path / 'images')
    return tmp_path


def edit(root, name, fn):
    path = root / name
    content = json.loads(path.read_text())
    fn(content)
    path.write_text(json.dumps(content))


def build(root, split='text-test', **kwargs):
    return OmniRefDataset(
        data_root=str(root), split=split, data_prefix=dict(img_path='images/'), pipeline=PIPELINE, **kwargs
    )


def test_unreadable_and_malformed_files(mini_copy):
    (mini_copy / 'OmniRef.json').write_text('{"text-test": [')
    with pytest.raises(OmniDataError, match=r'OmniRef.json is not valid JSON'):
        build(mini_copy)
    (mini_copy / 'OmniRef.json').write_text('[1, 2]')
    with pytest.raises(OmniDataError, match=r'OmniRef.json: expected an object keyed by split'):
        build(mini_copy)
    os.remove(mini_copy / 'instances.json')
    (mini_copy / 'OmniRef.json').write_text('{"text-test": []}')
    with pytest.raises(OmniDataError, match=r'annotation file not found: .*instances.json'):
        build(mini_copy)


def test_missing_key_names_the_record(mini_copy):
    edit(mini_copy, 'OmniRef.json', lambda c: c['text-test'][2].pop('ann_id'))
    with pytest.raises(
        OmniDataError, match=r"OmniRef.json \[text-test\] record 2: missing required key\(s\) \['ann_id'\]"
    ):
        build(mini_copy)
    ds = build(mini_copy, on_invalid='skip')
    assert len(ds) == 8 and len(ds.skipped) == 1 and 'record 2' in ds.skipped[0]


def test_unknown_ann_id_and_wrong_image(mini_copy):
    edit(mini_copy, 'OmniRef.json', lambda c: c['text-test'][0].update(ann_id=[999]))
    with pytest.raises(OmniDataError, match=r'record 0 ref_id=1: ann_id 999 is not in .*instances.json \[text-test\]'):
        build(mini_copy)
    edit(mini_copy, 'OmniRef.json', lambda c: c['text-test'][0].update(ann_id=[33]))
    with pytest.raises(OmniDataError, match=r'ann_id 33 belongs to image 439180, not to image 142238'):
        build(mini_copy)


def test_empty_and_out_of_image_masks(mini_copy):
    def empty(c):
        ann = next(a for a in c['text-test']['annotations'] if a['id'] == 14)
        ann['segmentation'] = []

    edit(mini_copy, 'instances.json', empty)
    with pytest.raises(OmniDataError, match=r'record 0 ref_id=1: annotation 14 has an empty or malformed polygon'):
        build(mini_copy)

    def outside(c):
        ann = next(a for a in c['text-test']['annotations'] if a['id'] == 14)
        ann['segmentation'] = [[700, 10, 720, 10, 720, 30]]
        ann['bbox'] = [700, 10, 20, 20]

    shutil.copy(osp.join(shared('omniref_real_mini'), 'instances.json'), mini_copy / 'instances.json')
    edit(mini_copy, 'instances.json', outside)
    with pytest.raises(OmniDataError, match=r'annotation 14 box .* lies outside its image \(w=640, h=427\)'):
        build(mini_copy)


def test_mask_that_decodes_to_nothing_is_caught_at_load_time(mini_copy):
    def degenerate(c):
        ann = next(a for a in c['text-test']['annotations'] if a['id'] == 14)
        ann['segmentation'] = [[10, 10, 10, 10, 10, 10]]  # a valid-looking polygon with no area

    edit(mini_copy, 'instances.json', degenerate)
    ds = build(mini_copy)
    with pytest.raises(
        OmniDataError,
        match=r'record 0 ref_id=1 sent_id=10: referred annotation\(s\) \[14\] have an '
        r'empty mask',
    ):
        ds[0]


def test_missing_image_names_the_path_and_the_record(mini_copy):
    os.remove(mini_copy / 'images')
    os.makedirs(mini_copy / 'images')
    shutil.copy(osp.join(shared('omniref_real_mini'), 'images', '000000439180.jpg'), mini_copy / 'images')
    ds = build(mini_copy)
    with pytest.raises(OmniDataError, match=r'record 0 ref_id=1 sent_id=10: .*000000142238.jpg'):
        ds[0]
    ds[4]  # the other image still loads
    train = build(mini_copy, on_invalid='skip', test_mode=False)
    out = train[0]  # skipped, counted, and another sample drawn
    assert out['data_samples'].img_id == 439180 and len(train.skipped) >= 1


def test_missing_reference_image(mini_copy):
    os.remove(mini_copy / 'images')
    os.makedirs(mini_copy / 'images')
    shutil.copy(osp.join(shared('omniref_real_mini'), 'images', '000000439180.jpg'), mini_copy / 'images')
    # In test mode, on_invalid='skip' keeps the sample's place and fetches it as a skip message
    # (omni_collate and the metrics count it, tests/test_evaluation/test_skipped_samples.py).
    ds = build(mini_copy, split='visual-test', on_invalid='skip', test_mode=True)
    out = ds[0]
    assert list(out) == [SKIPPED_KEY] and re.search(r'record 0: cannot read reference image .*142238', out[SKIPPED_KEY])


def test_no_target_visual_record_needs_its_supp_keys(mini_copy):
    def drop(c):
        c['visual-test'][2].pop('supp_cat_ids')

    edit(mini_copy, 'OmniRef.json', drop)
    ds = build(mini_copy, split='visual-test', on_invalid='skip')
    assert len(ds) == 1 and len(ds.skipped) == 2
    assert "record 2 (no-target visual record): missing required key(s) ['supp_cat_ids']" in ds.skipped[1]


def test_target_image_size_mismatch(mini_copy):
    ds = build(mini_copy)
    info = ds.get_data_info(0)
    other = next(f for f in os.listdir(mini_copy / 'images') if not info['img_path'].endswith(f))
    info['img_path'] = str(mini_copy / 'images' / other)  # an image of another size than the record says
    h, w = mmcv.imread(info['img_path']).shape[:2]
    with pytest.raises(
        OmniDataError, match=rf'image .*{other} is {h}x{w} but its annotation says {info["height"]}x{info["width"]}'
    ):
        ds.pipeline(info)


def test_reference_image_size_mismatch(mini_copy):
    ds = build(mini_copy, split='visual-test', on_invalid='skip')
    info = ds.get_data_info(0)
    ref = info['visual_prompts'][0]
    other = next(f for f in os.listdir(mini_copy / 'images') if not ref['img_path'].endswith(f))
    ref['img_path'] = str(mini_copy / 'images' / other)  # an image of another size than the record says
    h, w = mmcv.imread(ref['img_path']).shape[:2]
    with pytest.raises(
        OmniDataError,
        match=rf'reference image .*{other} is {h}x{w} but its annotation says {ref["height"]}x{ref["width"]}',
    ):
        ds.pipeline(info)


def test_corrupt_image_names_the_path_or_is_skipped_and_counted(mini_copy):
    os.remove(mini_copy / 'images')
    shutil.copytree(osp.join(shared('omniref_real_mini'), 'images'), mini_copy / 'images')
    with open(mini_copy / 'images' / '000000142238.jpg', 'wb') as f:
        f.write(b'\xff\xd8 not a jpeg any more')
    ds = build(mini_copy)
    with pytest.raises(OmniDataError, match=r'record 0 ref_id=1 sent_id=10: failed to load image: .*000000142238.jpg'):
        ds[0]
    train = build(mini_copy, on_invalid='skip', test_mode=False)
    for _ in range(3):
        assert train[0]['data_samples'].img_id != 142238  # skipped, another sample drawn
    assert len(train.skipped) >= 3 and all('000000142238.jpg' in s for s in train.skipped)
