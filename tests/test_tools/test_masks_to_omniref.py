"""tools/dataset_converters/masks_to_omniref.py: a home-made folder (images, a PNG per object, a table of
expressions) to the OmniRef layout that OmniRefDataset reads; bad input named by row and file."""

import csv
import json
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
from conftest import PIPELINE, REPO
from masks_to_omniref import ConversionError, convert, unused_masks

from omniris_mm.datasets import OmniRefDataset

# image -> objects (name, category, y0, y1, x0, x1) drawn as filled rectangles; sizes differ per image.
OBJECTS = {
    'a.png': (40, 60, [('a_1', 'cat', 5, 20, 5, 25), ('a_2', 'cat', 25, 35, 30, 55), ('a_3', 'dog', 22, 38, 2, 20)]),
    'b.png': (50, 50, [('b_1', 'cat', 10, 30, 10, 30), ('b_2', 'dog', 35, 48, 30, 48)]),
    'c.png': (30, 40, [('c_1', 'dog', 3, 25, 4, 30)]),
}
ROWS = [
    dict(image='a.png', masks='a_1.png;a_2.png', expression='both cats', split='train', categories='cat;cat'),
    dict(image='a.png', masks='a_3.png', expression='the dog', split='train', categories='dog'),
    dict(image='a.png', masks='', expression='the horse', split='train', categories=''),
    dict(image='b.png', masks='b_1.png;b_2.png', expression='cat and dog', split='train', categories='cat;dog'),
    dict(image='c.png', masks='c_1.png', expression='the dog', split='test', categories='dog'),
]


def home_made(root, rows=ROWS, write_json=False):
    (root / 'images').mkdir(parents=True, exist_ok=True)
    (root / 'masks').mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for name, (h, w, objects) in OBJECTS.items():
        cv2.imwrite(str(root / 'images' / name), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        for mask_name, _, y0, y1, x0, x1 in objects:
            mask = np.zeros((h, w), np.uint8)
            mask[y0:y1, x0:x1] = 255
            cv2.imwrite(str(root / 'masks' / f'{mask_name}.png'), mask)
    if write_json:
        path = root / 'expressions.json'
        split = lambda v: [x for x in v.split(';') if x]  # noqa: E731
        items = [dict(r, masks=split(r['masks']), categories=split(r['categories'])) for r in rows]
        path.write_text(json.dumps(items))
    else:
        path = root / 'expressions.csv'
        with open(path, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return str(root / 'images'), str(root / 'masks'), str(path)


def test_the_layout_reads_back_with_the_masks_as_drawn(tmp_path):
    images, masks, table = home_made(tmp_path / 'mine')
    out = tmp_path / 'omniref'
    counts = convert(images, masks, table, str(out))
    assert counts['text-train'] == 4 and counts['text-test'] == 1
    # Visual: a cat in a (b has cats) and b (a has cats), a dog in a, b and c; no-target records where a
    # category the image lacks is elsewhere: c (no cat; a and b have cats). a and b have both categories.
    assert counts['visual-train'] == 4 and counts['visual-test'] == 2
    assert counts['omni-train'] == 0
    data = OmniRefDataset(data_root=str(out), split='text-train', data_prefix=dict(img_path='images/'),
                          pipeline=PIPELINE, test_mode=True)  # fmt: skip
    seen = {}
    for i in range(len(data)):
        sample = data[i]['data_samples']
        name = osp.basename(sample.img_path)
        expected = np.zeros(OBJECTS[name][:2], bool)
        row = [r for r in ROWS if r['image'] == name and r['expression'] == sample.text][0]
        for m in filter(None, row['masks'].split(';')):
            expected |= cv2.imread(osp.join(masks, m), cv2.IMREAD_GRAYSCALE) > 0
        assert np.array_equal(sample.gt_sem_seg.sem_seg[0].numpy() > 0, expected), (name, sample.text)
        assert bool(sample.gt_no_target) == (not expected.any())
        seen[(name, sample.text)] = True
    assert len(seen) == 4
    visual = OmniRefDataset(data_root=str(out), split='visual-test', data_prefix=dict(img_path='images/'),
                            pipeline=PIPELINE, test_mode=True)  # fmt: skip
    targets = sorted(bool(visual[i]['data_samples'].gt_no_target) for i in range(len(visual)))
    assert targets == [False, True]
    with open(out / 'instances.json') as f:
        cats = {c['name'] for c in json.load(f)['text-train']['categories']}
    assert cats == {'cat', 'dog'}
    assert osp.isfile(out / 'images' / 'a.png') and not osp.islink(out / 'images' / 'a.png')


def test_csv_and_json_tables_give_the_same_files(tmp_path):
    convert(*home_made(tmp_path / 'csv'), str(tmp_path / 'out_csv'))
    convert(*home_made(tmp_path / 'json', write_json=True), str(tmp_path / 'out_json'))
    for name in ('OmniRef.json', 'instances.json', 'SuppImageAnns.json'):
        assert (tmp_path / 'out_csv' / name).read_text() == (tmp_path / 'out_json' / name).read_text()


def bad(tmp_path, match, rows=ROWS, edit=None):
    images, masks, table = home_made(tmp_path / 'mine', rows)
    if edit:
        edit(tmp_path / 'mine')
    with pytest.raises(ConversionError, match=match):
        convert(images, masks, table, str(tmp_path / 'out'))


def test_bad_input_is_named_by_row_and_file(tmp_path):
    row = lambda **kw: [dict(ROWS[0], **kw)] + ROWS[1:]  # noqa: E731
    bad(tmp_path / '1', r'expressions.csv line 2: image .*zebra.png does not exist', row(image='zebra.png'))
    bad(tmp_path / '2', r'line 2: mask .*a_9.png does not exist', row(masks='a_1.png;a_9.png'))
    bad(tmp_path / '4', r'mask a_1.png is named for b.png and \(.*line 2\) for a.png',
        ROWS + [dict(ROWS[3], masks='a_1.png', categories='cat')])  # fmt: skip

    def resize(root):
        cv2.imwrite(str(root / 'masks' / 'a_3.png'), np.zeros((10, 10), np.uint8) + 255)

    bad(tmp_path / '5', r'line 3: mask .*a_3.png is 10x10 but the image is 60x40', edit=resize)

    def ids(root):
        mask = np.zeros((40, 60), np.uint8)
        mask[:10, :10], mask[20:, 20:] = 1, 2
        cv2.imwrite(str(root / 'masks' / 'a_3.png'), mask)

    bad(tmp_path / '6', r'a_3.png has the values \[0, 1, 2\]; expected 0 \(background\) and one other', edit=ids)

    def empty(root):
        cv2.imwrite(str(root / 'masks' / 'a_3.png'), np.zeros((40, 60), np.uint8))

    bad(tmp_path / '7', r'a_3.png is empty', edit=empty)
    bad(
        tmp_path / '8', r'image c.png has rows in the splits \[.test., .train.\]', ROWS + [dict(ROWS[4], split='train')]
    )
    bad(tmp_path / '9', r'line 4: mask a_3.png is a cat here and a dog in .*line 3',
        ROWS[:2] + [dict(ROWS[1], categories='cat')] + ROWS[2:])  # fmt: skip
    bad(tmp_path / '10', r'line 2: 1 categories for 2 masks', row(categories='cat'))
    bad(tmp_path / '11', r'line 2: the expression is empty', row(expression='  '))


def test_a_table_without_its_columns_is_named(tmp_path):
    path = tmp_path / 'expressions.csv'
    path.write_text('image,mask,text\na.png,a_1.png,the cat\n')
    with pytest.raises(ConversionError, match=r"expressions.csv: the header lacks \['masks', 'expression'\]"):
        convert(str(tmp_path), str(tmp_path), str(path), str(tmp_path / 'out'))


def test_unused_masks_are_listed_and_the_command_line_names_errors(tmp_path):
    images, masks, table = home_made(tmp_path / 'mine')
    cv2.imwrite(osp.join(masks, 'stray.png'), np.zeros((4, 4), np.uint8))
    assert unused_masks(masks, table) == ['stray.png']
    script = osp.join(REPO, 'tools', 'dataset_converters', 'masks_to_omniref.py')

    def run(out):
        return subprocess.run([sys.executable, script, images, masks, table, out], capture_output=True, text=True)

    ok = run(str(tmp_path / 'out'))
    assert ok.returncode == 0 and '1 mask file(s) no row names, left out: stray.png' in ok.stdout
    assert 'text-train 4' in ok.stdout
    cv2.imwrite(osp.join(masks, 'a_1.png'), np.zeros((3, 3), np.uint8) + 255)
    failed = run(str(tmp_path / 'out2'))
    assert (
        failed.returncode != 0
        and 'error: ' in failed.stderr
        and 'a_1.png is 3x3 but the image is 60x40' in failed.stderr
    )
    assert 'Traceback' not in failed.stderr
