"""Model-zoo file names carry the first hex digits of the file's SHA-256 (MMDetection's
``publish_model`` convention: ``NAME-<8 hex>.pth``); loading such a file checks them.

mmengine loads local files without looking at their name, so a truncated download or a
swapped file surfaces later as odd weights or a pickle error. Importing this module wraps
the local-file loader of mmengine's ``CheckpointLoader`` (so ``load_from``, ``init_cfg``
and ``load_checkpoint`` all check) and keeps whatever loader was registered before.
"""

import hashlib
import os.path as osp
import re
from typing import Optional

from mmengine.runner.checkpoint import CheckpointLoader

HASH_SUFFIX = re.compile(r'-([0-9a-f]{8,64})\.pth$')


def file_sha256(path: str, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            digest.update(block)
    return digest.hexdigest()


def verify_hash_prefix(path: str) -> Optional[str]:
    """Check ``path`` against the hash prefix in its name; returns the prefix checked (None
    when the name carries none). Raises ``RuntimeError`` naming the file on a mismatch."""
    match = HASH_SUFFIX.search(osp.basename(path))
    if match is None:
        return None
    expected = match.group(1)
    actual = file_sha256(path)
    if not actual.startswith(expected):
        raise RuntimeError(
            f'checkpoint {path}: its name says SHA-256 {expected}..., the file has {actual[: len(expected)]}... '
            '(incomplete download or a different file); download it again'
        )
    return expected


_local_loader = CheckpointLoader._schemes['']


def _load_local_verified(filename, map_location=None, *args, **kwargs):
    if osp.isfile(osp.expanduser(filename)):
        verify_hash_prefix(osp.expanduser(filename))
    return _local_loader(filename, map_location, *args, **kwargs)


CheckpointLoader.register_scheme(prefixes='', loader=_load_local_verified, force=True)
