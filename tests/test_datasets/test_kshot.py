"""k-shot exemplars: several references of one concept in one sample (issue 13, point 2)."""

import json
import os.path as osp

import numpy as np
import pytest
from conftest import shared
from test_omniref import TEST_PIPELINE, mini

from omniris_mm.datasets import OmniDataError
from omniris_mm.datasets.reference_db import ReferenceDatabase


def _entry(name, img_id, cat):
    return dict(img_path=f'{name}.jpg', img_id=img_id, category_id=cat, ann_id=name, mask=None, bbox=[0, 0, 1, 1])


def test_further_shots_come_from_new_images_first_and_never_from_the_target():
    # category 1: a and b in image 10, c in 11, d in 12, f in the target image 14; e is another category
    names = [('a', 10, 1), ('b', 10, 1), ('c', 11, 1), ('d', 12, 1), ('e', 13, 2), ('f', 14, 1)]
    db = ReferenceDatabase([_entry(*n) for n in names])
    query = dict(category_ids=[1], exclude_image_id=14, image_id=None)
    for seed in range(5):
        more = [r['ann_id'] for r in db.draw_more(0, query, np.random.default_rng(seed), 3)]
        assert sorted(more[:2]) == ['c', 'd'] and more[2] == 'b'
        # asking for more than there is gives what there is
        assert sorted(r['ann_id'] for r in db.draw_more(0, query, np.random.default_rng(seed), 10)) == ['b', 'c', 'd']
    # a query pinned to image 10 (a fixed reference) pins its first shot only
    pinned = dict(query, image_id=10)
    assert sorted(r['ann_id'] for r in db.draw_more(0, pinned, np.random.default_rng(0), 2)) == ['c', 'd']


def _persons_elsewhere(target_img):
    """Ann ids of the category-1 references of the raw SuppImageAnns.json outside the target image."""
    with open(osp.join(shared('omniref_real_mini'), 'SuppImageAnns.json')) as f:
        supp = json.load(f)
    return {a['annotations']['id'] for a in supp['1'] if a['image_id'] != target_img}


def test_k_shot_samples_are_the_one_shot_samples_with_more_exemplars():
    one = mini('visual-test', on_invalid='skip')
    three = mini('visual-test', on_invalid='skip', num_shots=3)
    a, b = one.get_data_info(0), three.get_data_info(0)
    refs = b['visual_prompts']
    assert len(a['visual_prompts']) == 1 and len(refs) == 3
    assert refs[0]['ann_id'] == a['visual_prompts'][0]['ann_id'] and a['prompt_seed'] == b['prompt_seed']
    assert len({r['ann_id'] for r in refs}) == 3 and {r['category_id'] for r in refs} == {1}
    assert {r['ann_id'] for r in refs} <= _persons_elsewhere(a['img_id'])
    assert [r['shot'] for r in refs] == [0, 1, 2]
    # Packed, the shots share the first one's prompt type, each with its own reference image and map.
    pa, pb = one[0]['data_samples'], three[0]['data_samples']
    assert pb.prompt_types == pa.prompt_types * 3 and len(pb.ref_masks) == 3 and len(pb.prompt_maps) == 3
    assert np.array_equal(pa.prompt_maps[0].numpy(), pb.prompt_maps[0].numpy())


def test_too_few_references_for_k_is_an_error_naming_the_record():
    target_img = mini('visual-test', on_invalid='skip').get_data_info(0)['img_id']
    n = len(_persons_elsewhere(target_img))
    enough = mini('visual-test', on_invalid='skip', num_shots=n).get_data_info(0)
    assert {r['ann_id'] for r in enough['visual_prompts']} == _persons_elsewhere(target_img)
    message = rf'record 0: {n + 1}-shot needs {n + 1} references of category 1, .* has {n}'
    with pytest.raises(OmniDataError, match=message):
        mini('visual-test', on_invalid='skip', num_shots=n + 1).get_data_info(0)
    # while training, a sample gets what there is
    train = mini('visual-test', on_invalid='skip', num_shots=(n + 1, n + 1), test_mode=False)
    assert len(train.get_data_info(0)['visual_prompts']) == n


def test_training_draws_k_per_sample_in_its_range():
    ds = mini('visual-test', on_invalid='skip', num_shots=(1, 3), test_mode=False, pipeline=TEST_PIPELINE)
    np.random.seed(0)
    counts = [len(ds.get_data_info(0)['visual_prompts']) for _ in range(60)]
    assert set(counts) == {1, 2, 3}


@pytest.mark.parametrize(
    'num_shots, test_mode, message',
    [(0, True, 'an int >= 1'), ((3, 2), False, 'low <= high'), ((1, 3), True, 'one number in test mode')],
)
def test_bad_num_shots(num_shots, test_mode, message):
    with pytest.raises(ValueError, match=message):
        mini('visual-test', on_invalid='skip', num_shots=num_shots, test_mode=test_mode)
