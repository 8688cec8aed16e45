import json
import os.path as osp
from collections import defaultdict

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from conftest import PIPELINE, REPO, shared
from mmengine.config import Config
from mmengine.registry import init_default_scope

from omniris_mm.datasets import CocoPartDataset, OmniDataError

IMAGES = shared('coco_val2017_sample')


@pytest.fixture(scope='module')
def paco(tmp_path_factory):
    from make_part_samples import build_paco

    return build_paco(IMAGES, str(tmp_path_factory.mktemp('paco')))


def load(path):
    with open(path) as f:
        return json.load(f)


def dataset(path, **kwargs):
    init_default_scope('mmdet')
    return CocoPartDataset(
        ann_file=path, data_prefix=dict(img_path=IMAGES), pipeline=PIPELINE, test_mode=True, **kwargs
    )


def expected_texts(coco):
    """The text samples, from the file's own records: per image and part category, every part; the left and
    right object's parts (by the object box's centre); no-target texts are checked separately."""
    cats = {c['id']: c['name'].split(':') for c in coco['categories'] if ':' in c['name']}
    anns = {a['id']: a for a in coco['annotations']}
    by = defaultdict(list)
    for a in coco['annotations']:
        if a['category_id'] in cats:
            by[a['image_id'], a['category_id']].append(a)
    out = {}
    for (img, cat), parts in by.items():
        obj, part = cats[cat]
        owners = sorted({a['obj_ann_id'] for a in parts}, key=lambda o: anns[o]['bbox'][0] + anns[o]['bbox'][2] / 2)
        if len(parts) == 1:
            out[img, f'the {part} of the {obj}'] = {parts[0]['id']}
        else:
            out[img, f'all {part}s of the {obj}s'] = {a['id'] for a in parts}
        if len(owners) >= 2:
            for side, owner in (('left', owners[0]), ('right', owners[-1])):
                out[img, f'the {part} of the {obj} on the {side}'] = {
                    a['id'] for a in parts if a['obj_ann_id'] == owner
                }
    return out


def test_part_texts_target_every_part_of_their_kind_and_the_left_and_right_objects_parts(paco):
    coco = load(paco)
    ds = dataset(paco, no_target_per_image=1)
    got, no_target = {}, []
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        assert info['granularity'] == 'part' and info['prompt_modality'] == 'text'
        ids = {x['ann_id'] for x in info['instances']}
        if ids:
            got[info['img_id'], info['text']] = ids
        else:
            no_target.append((info['img_id'], info['text']))
    assert got == expected_texts(coco)
    assert len(got) == 12  # the fixture: persons' heads in both images, trucks' tops and horses' legs in one
    # One no-target text per image, about a part kind absent from it: 142238 has neither trucks nor horses.
    assert len(no_target) == 1 and no_target[0][0] == 142238
    assert no_target[0][1] in ('the top of the truck', 'the leg of the horse')
    # A sample's mask is the union of its parts' masks.
    idx = next(i for i in range(len(ds)) if ds.get_data_info(i)['text'] == 'all legs of the horses')
    legs = [a for a in coco['annotations'] if a['category_id'] == 203]
    union = np.any([mask_utils.decode(a['segmentation']) for a in legs], 0)
    sample = ds[idx]['data_samples']
    np.testing.assert_array_equal(sample.gt_sem_seg.sem_seg[0].numpy() == 1, union)
    assert sample.granularity == 'part' and sample.text == 'all legs of the horses'


def test_a_part_name_shared_by_several_kinds_gives_an_all_parts_text(paco, tmp_path):
    coco = load(paco)
    for c in coco['categories']:
        if c['name'] == 'horse:leg':
            c['name'] = 'horse:top'  # now trucks and horses both have tops
    path = tmp_path / 'parts.json'
    path.write_text(json.dumps(coco))
    ds = dataset(str(path), no_target_per_image=0)
    texts = {
        ds.get_data_info(i)['text']: {x['ann_id'] for x in ds.get_data_info(i)['instances']} for i in range(len(ds))
    }
    tops = {a['id'] for a in coco['annotations'] if a['category_id'] in (202, 203)}
    assert len(tops) == 11 and texts['all tops'] == tops


def test_visual_part_prompts_mark_a_part_of_the_kind_on_another_image(paco):
    ds = dataset(paco, modality='visual', no_target_per_image=1)
    heads = defaultdict(set)
    for a in load(paco)['annotations']:
        if a['category_id'] == 201:
            heads[a['image_id']].add(a['id'])
    targeted = 0
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        prompt = info['visual_prompts'][0]
        assert info['granularity'] == 'part' and prompt['img_id'] != info['img_id']
        assert prompt['category_id'] in (201, 202, 203)
        if info['instances']:  # only heads are in both images: the other kinds have no reference elsewhere
            targeted += 1
            assert prompt['category_id'] == 201 and {x['ann_id'] for x in info['instances']} == heads[info['img_id']]
    assert targeted == 2 and len(ds.skipped) == 2
    sample = ds[0]['data_samples']
    assert sample.granularity == 'part' and sample.prompt_modality == 'visual'


def test_bad_part_files_are_named(paco, tmp_path):
    coco = load(paco)
    part = next(a for a in coco['annotations'] if a['image_id'] == 142238 and 'obj_ann_id' in a)
    other = next(a for a in coco['annotations'] if a['image_id'] == 439180)
    part['obj_ann_id'] = other['id']
    path = tmp_path / 'bad.json'
    path.write_text(json.dumps(coco))
    with pytest.raises(
        OmniDataError, match=rf'part annotation {part["id"]} \(image 142238\) has obj_ann_id {other["id"]}'
    ):
        dataset(str(path))
    objects_only = dict(coco, categories=[c for c in coco['categories'] if ':' not in c['name']])
    path.write_text(json.dumps(objects_only))
    with pytest.raises(OmniDataError, match='no part category'):
        dataset(str(path))
    with pytest.raises(ValueError, match='modality must be one of'):
        dataset(paco, modality='omni')


def test_the_joint_stage_with_parts_mixes_the_part_sources_by_its_ratio(paco):
    from mmdet.registry import DATASETS

    init_default_scope('mmdet')
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'omnisegnet', 'omnisegnet_swinb_stage3_joint-parts.py'))
    joint = Config.fromfile(osp.join(REPO, 'configs', 'omnisegnet_swinb.py'))
    assert cfg.load_from == joint.load_from and cfg.model == joint.model
    sources = cfg.train_dataloader.dataset.datasets
    assert len(cfg.train_dataloader.sampler.source_ratio) == len(sources) == 5
    assert sources[:3] == joint.train_dataloader.dataset.datasets
    assert [(s.type, s.modality) for s in sources[3:]] == [('CocoPartDataset', 'text'), ('CocoPartDataset', 'visual')]
    for source in sources[3:]:
        source.update(data_root='', ann_file=paco, data_prefix=dict(img_path=IMAGES))
        ds = DATASETS.build(source)
        item = ds[0]  # through the joint stage's training pipeline
        assert item['data_samples'].granularity == 'part'
        assert item['data_samples'].prompt_modality == source.modality
