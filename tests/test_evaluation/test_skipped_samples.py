"""A long evaluation does not die on bad data: with on_invalid='skip', tools/test.py scores the rest,
prints how many samples were skipped under the metric table and stores the number with the results."""

import glob
import json
import os.path as osp
import shutil
import subprocess
import sys

import torch
from conftest import REPO
from mmengine.config import Config
from mmengine.registry import init_default_scope

CONFIG = osp.join(REPO, 'configs', 'omnishapes', 'omnisegnet_tiny_omnishapes.py')
SPLITS = ('text-test', 'visual-test', 'omni-test')


def samples_of(records, image_id=None):
    """Samples of a split's records (one per sentence of a text or omni record, one per visual
    record), optionally only those whose target is ``image_id``."""
    return sum(
        len(r['sentences']) if 'sentences' in r else 1 for r in records if image_id is None or r['image_id'] == image_id
    )


def test_bad_records_and_files_are_skipped_counted_and_reported(omnishapes, tmp_path):
    root = tmp_path / 'omnishapes'
    shutil.copytree(omnishapes, root)
    refs = json.loads((root / 'OmniRef.json').read_text())
    supp = json.loads((root / 'SuppImageAnns.json').read_text())
    # A target image that no record uses as its no-target reference: corrupt it, and take it out of
    # the reference database, so that exactly the samples about it fail (at fetch time).
    used_as_supp = {r.get('supp_image_id') for s in SPLITS for r in refs[s]}
    bad_image = next(r['image_id'] for r in refs['text-test'] if r['image_id'] not in used_as_supp)
    bad_file = next(r['file_name'] for r in refs['text-test'] if r['image_id'] == bad_image)
    (root / 'images' / bad_file).write_bytes(b'not a PNG')
    supp = {c: [e for e in entries if e['image_id'] != bad_image] for c, entries in supp.items()}
    (root / 'SuppImageAnns.json').write_text(json.dumps(supp))
    # And a malformed record (an annotation id that does not exist) in another image (at load time).
    broken = next(i for i, r in enumerate(refs['text-test']) if r['image_id'] != bad_image)
    refs['text-test'][broken]['ann_id'] = [10**9]
    (root / 'OmniRef.json').write_text(json.dumps(refs))
    total = sum(samples_of(refs[s]) for s in SPLITS)
    skipped = sum(samples_of(refs[s], bad_image) for s in SPLITS) + len(refs['text-test'][broken]['sentences'])

    init_default_scope('mmdet')
    from mmdet.registry import MODELS

    torch.manual_seed(0)
    ckpt = tmp_path / 'random.pth'
    torch.save({'state_dict': MODELS.build(Config.fromfile(CONFIG).model).state_dict()}, ckpt)
    # Batches of one: every skipped sample is a batch with nothing to predict (OmniTestLoop goes on).
    opts = ['test_dataloader.batch_size=1', 'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False']
    for i in range(3):
        opts += [
            f'test_dataloader.dataset.datasets.{i}.data_root={root}',
            f'test_dataloader.dataset.datasets.{i}.on_invalid=skip',
        ]
    cmd = [sys.executable, 'tools/test.py', CONFIG, str(ckpt), '--work-dir', str(tmp_path / 'work')]
    proc = subprocess.run([*cmd, '--cfg-options', *opts], cwd=REPO, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    table = out[out.index('OmniRIS results') :]
    line = f"skipped: {skipped} of {total} samples were not scored (on_invalid='skip'); "
    line += f'the figures are over the other {total - skipped}.'
    assert line in table
    assert table.index('omni ') < table.index(line)  # under the table
    [metrics_file] = glob.glob(str(tmp_path / 'work' / '*' / '*.json'))
    assert json.load(open(metrics_file))['skipped'] == skipped
