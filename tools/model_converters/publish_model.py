"""Prepare a trained checkpoint for the model zoo: keep the weights and meta only (no optimizer
or scheduler state), then name the file NAME-<first 8 hex of its SHA-256>.pth, which
omniris_mm checks whenever such a file is loaded.

    python tools/model_converters/publish_model.py work_dirs/omnisegnet_swinb/iter_37600.pth \
        omnisegnet_swinb_omniref.pth
"""

import argparse
import os
import os.path as osp

import torch

from omniris_mm.engine.checkpoint import file_sha256, load_checkpoint_file


def publish(src: str, dst: str) -> str:
    ckpt = load_checkpoint_file(src, map_location='cpu')
    out = {'state_dict': ckpt.get('state_dict', ckpt)}
    if 'meta' in ckpt:
        out['meta'] = {k: v for k, v in ckpt['meta'].items() if k not in ('hook_msgs',)}
    stem = osp.splitext(dst)[0]
    tmp = stem + '.tmp.pth'
    torch.save(out, tmp)
    final = f'{stem}-{file_sha256(tmp)[:8]}.pth'
    os.replace(tmp, final)
    return final


def main():
    parser = argparse.ArgumentParser(description='Strip a checkpoint and name it with its hash prefix')
    parser.add_argument('src', help='checkpoint written by training')
    parser.add_argument('dst', help='output name, without the hash (e.g. omnisegnet_swinb_omniref.pth)')
    args = parser.parse_args()
    print(publish(args.src, args.dst))


if __name__ == '__main__':
    main()
