import json
import os.path as osp

import numpy as np
import pycocotools.mask as mask_utils
from conftest import PIPELINE, shared

from omniris_mm.datasets import CocoVisualPromptDataset


def test_any_coco_instance_file_becomes_visual_prompt_samples():
    root = shared('coco_val2017_sample')
    ds = CocoVisualPromptDataset(
        ann_file=osp.join(root, 'instances.json'),
        data_prefix=dict(img_path=root),
        category_ids=[1, 8, 19, 37],
        pipeline=PIPELINE,
        test_mode=True,
    )
    infos = [ds.get_data_info(i) for i in range(len(ds))]
    summary = sorted(
        (i['img_id'], i['instances'][0]['category_id'] if i['instances'] else -1, i['visual_prompts'][0]['category_id'])
        for i in infos
    )
    # person in each image (reference from the other one); a no-target sample per image about a category
    # absent from it; ball (142238), truck and horse (439180) appear in one image only: no reference, skipped.
    assert len(summary) == 4
    assert summary[0][:2] == (142238, -1) and summary[0][2] in (8, 19)
    assert summary[1] == (142238, 1, 1) and summary[3] == (439180, 1, 1)
    assert summary[2] == (439180, -1, 37)
    assert len(ds.skipped) == 3 and any('category_id=37' in s for s in ds.skipped)
    for info in infos:
        assert info['visual_prompts'][0]['img_id'] != info['img_id']

    with open(osp.join(root, 'instances.json')) as f:
        anns = json.load(f)['annotations']
    persons = [a for a in anns if a['image_id'] == 142238 and a['category_id'] == 1 and not a['iscrowd']]
    union = np.any([mask_utils.decode(a['segmentation']) for a in persons], 0)
    idx = next(i for i, info in enumerate(infos) if info['img_id'] == 142238 and info['instances'])
    sample = ds[idx]['data_samples']
    assert sample.setting == '1vN' and sample.prompt_modality == 'visual'
    np.testing.assert_array_equal(sample.gt_sem_seg.sem_seg[0].numpy() == 1, union)  # 255: crowd (test_crowd)
    assert sample.prompt_maps[0].shape[1:] == sample.ref_imgs[0].shape[1:]
