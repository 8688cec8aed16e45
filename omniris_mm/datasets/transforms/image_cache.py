"""A per-process cache of decoded images, bounded in bytes.

Small sets are read many times over in training: a quickstart batch decodes 21 of OmniShapes' 384
images (targets and references), about 8 ms of the loader's 23-28 ms per batch, while all 384
decoded take 21 MB. Neither mmcv's ``LoadImageFromFile`` nor mmengine's file backends keep
decoded pixels, and ``functools.lru_cache`` can neither bound the bytes it holds nor notice a file
rewritten on disk; hence this small LRU.

Only local files are cached, keyed by their absolute path, inode, size, modification and change
times (a rewritten or replaced file is read again; not one rewritten in place to the same size
within the file system's timestamp resolution: turn the cache off, ``cache_bytes=0``, for images
that change while a run reads them) and the decoding settings. Every read returns a fresh copy, so a transform that
writes into its image in place cannot change what the next sample gets. The cache lives in the
process that reads: each data-loader worker fills its own, and a bound of 0 turns it off.
"""

import os
from typing import Optional

import mmcv
import numpy as np
from mmengine.fileio import get

from ...utils import BytesLRUCache


def _frozen_copy(arr: np.ndarray) -> np.ndarray:
    kept = arr.copy()
    kept.flags.writeable = False
    return kept


class DecodedImageCache(BytesLRUCache):
    """Least-recently-used arrays up to ``max_bytes`` in all (an array larger than that is not
    kept); each kept array is a read-only copy, and each read returns a fresh copy."""

    def __init__(self, max_bytes: int = 0):
        super().__init__(max_bytes, copy_in=_frozen_copy, copy_out=np.copy)


# One per process: the target and the reference loaders of a pipeline share it, and a data-loader
# worker (forked or spawned) fills its own.
IMAGE_CACHE = DecodedImageCache()


def cache_key(path: str, color_type: str, backend: str, backend_args: Optional[dict]) -> Optional[tuple]:
    """The key of a local image file as it is now, or None for anything that is not one (URLs, object
    stores, a backend given in ``backend_args``, a missing file)."""
    if backend_args and backend_args.get('backend', 'local') != 'local':
        return None
    path = str(path)
    if '://' in path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    # ctime and inode as well: a copy that keeps the modification time (cp -p, rsync -a, tar) moves them.
    return (os.path.abspath(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, color_type, backend)


def read_image(
    path: str,
    color_type: str = 'color',
    backend: str = 'cv2',
    backend_args: Optional[dict] = None,
    cache_bytes: int = 0,
) -> Optional[np.ndarray]:
    """``mmcv.imfrombytes(get(path))`` through :data:`IMAGE_CACHE` when ``cache_bytes`` > 0.

    The process's cache grows to the largest ``cache_bytes`` asked of it (set at the first read, so a
    spawned worker that unpickles the transform gets the same bound). Returns None where mmcv does
    (an undecodable file); read errors propagate.
    """
    key = None
    if cache_bytes > 0:
        IMAGE_CACHE.max_bytes = max(IMAGE_CACHE.max_bytes, int(cache_bytes))
        key = cache_key(path, color_type, backend, backend_args)
        if key is not None:
            img = IMAGE_CACHE.get(key)
            if img is not None:
                return img
    img = mmcv.imfrombytes(get(path, backend_args=backend_args), flag=color_type, backend=backend)
    if key is not None and img is not None:
        IMAGE_CACHE.put(key, img)
    return img
