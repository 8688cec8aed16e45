"""docs/finetune_custom_data.md runs as written: every bash block, in order, on the COCO sample, a few iterations.

The commands run in a scratch folder that links the repository's configs/ and tools/ (so data/ and work_dirs/
land there), from a random-weight checkpoint of the tiny model in place of the quickstart's."""

import json
import math
import os
import os.path as osp
import re
import subprocess
import sys

import mmcv
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from conftest import REPO, SHARED_DATA

GUIDE = osp.join(REPO, 'docs', 'finetune_custom_data.md')
SAMPLE = osp.join(SHARED_DATA, 'coco_val2017_sample')
ITERS = 3


def bash_blocks(path):
    return re.findall(r'```bash\n(.*?)```', open(path).read(), flags=re.S)


@pytest.mark.skipif(not osp.isdir(SAMPLE), reason='needs ../shared/data/coco_val2017_sample')
def test_the_guide_runs_as_written(tmp_path):
    from omniris_mm.apis import OmniRISInferencer

    for name in ('configs', 'tools', 'demo'):
        os.symlink(osp.join(REPO, name), tmp_path / name)
    torch.manual_seed(0)
    ckpt = tmp_path / 'start.pth'
    model = OmniRISInferencer(osp.join(REPO, 'configs/finetune/omnisegnet_tiny_finetune_custom.py'), device='cpu').model
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), ckpt)
    blocks = bash_blocks(GUIDE)
    assert len(blocks) == 7, 'settings, step 0 to 5'
    script = 'set -euo pipefail\n' + '\n'.join(blocks)
    env = dict(os.environ, SAMPLE=SAMPLE, CKPT=str(ckpt), ITERS=str(ITERS), OMP_NUM_THREADS='2',
               PATH=osp.dirname(sys.executable) + os.pathsep + os.environ['PATH'])  # fmt: skip
    run = subprocess.run(['bash', '-c', script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]

    # Step 0 + 1: the converted text samples refer to exactly the masks the table names.
    coco = json.load(open(osp.join(SAMPLE, 'instances.json')))
    kept = [a for a in coco['annotations'] if not a['iscrowd'] and a['category_id'] in (1, 8, 19, 37)]
    omniref = json.load(open(tmp_path / 'data/my_omniref/OmniRef.json'))
    instances = json.load(open(tmp_path / 'data/my_omniref/instances.json'))
    texts = {r['sentences'][0]['sent']: r for r in omniref['text-train'] + omniref['text-test']}
    horses = texts['all the horses']
    anns = {a['id']: a for a in instances['text-test']['annotations']}
    union = np.zeros((360, 640), bool)
    for ann_id in horses['ann_id']:
        union |= mask_utils.decode(anns[ann_id]['segmentation']) > 0
    expected = np.zeros((360, 640), bool)
    for a in kept:
        if a['category_id'] == 19:  # horse
            rle = a['segmentation']
            rle = mask_utils.frPyObjects(rle, *rle['size']) if isinstance(rle['counts'], list) else rle
            expected |= mask_utils.decode(rle) > 0
    assert union.any() and np.array_equal(union, expected)
    assert texts['the giraffe']['ann_id'] == [-1]

    # Step 2: the oracle scores 100 on every figure it can compute.
    oracle = json.load(open(tmp_path / 'work_dirs/finetune_custom_oracle.json'))
    assert oracle['skipped'] == 0 and oracle['text/gIoU'] == 100.0 and oracle['visual/gIoU'] == 100.0
    assert all(v == 100.0 or math.isnan(v) for k, v in oracle.items() if k != 'skipped'), oracle

    # Step 3 + 4 + 5: a checkpoint of the fine-tuned model, the test table, a picture per test sample, the demo.
    assert (tmp_path / f'work_dirs/finetune_custom/iter_{ITERS}.pth').is_file()
    assert 'gIoU' in run.stdout + run.stderr
    num_test = len(omniref['text-test']) + len(omniref['visual-test'])
    pictures = [p for p in (tmp_path / 'work_dirs/finetune_custom').glob('*/pictures/*') if p.is_file()]
    assert len(pictures) == num_test, (len(pictures), num_test)
    demo = list((tmp_path / 'outputs/finetune_demo/vis').glob('*.png'))
    assert len(demo) == 1 and mmcv.imread(str(demo[0])) is not None


@pytest.mark.parametrize(
    'config, base',
    [
        ('omnisegnet_tiny_finetune_custom.py', '../omnishapes/omnisegnet_tiny_2k_omnishapes.py'),
        ('omnisegnet_swinb_finetune_custom.py', '../omnisegnet_swinb.py'),
    ],
)
def test_the_finetune_configs_change_only_data_and_schedule(config, base):
    from mmengine.config import Config

    folder = osp.join(REPO, 'configs', 'finetune')
    ours, theirs = Config.fromfile(osp.join(folder, config)), Config.fromfile(osp.join(folder, base))
    changed = {k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k)}
    allowed = {'data_root', 'train_splits', 'test_splits', 'train_dataloader', 'val_dataloader', 'test_dataloader',
               'max_iters', 'load_from', 'train_cfg', 'optim_wrapper', 'param_scheduler', 'default_hooks'}  # fmt: skip
    assert changed <= allowed, changed - allowed
    assert ours.model == theirs.model and ours.train_pipeline == theirs.train_pipeline
    for loader, splits in (('train_dataloader', ours.train_splits), ('test_dataloader', ours.test_splits)):
        datasets = ours[loader].dataset.datasets
        assert [d.split for d in datasets] == list(splits)
        assert all(d.data_root == 'data/my_omniref/' and d.type == 'OmniRefDataset' for d in datasets)
    assert len(ours.train_dataloader.sampler.source_ratio) == len(ours.train_splits)
