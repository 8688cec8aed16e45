"""The one path by which checkpoints are read: the file's name checked against its hash, and
the pickle read with ``weights_only=True``.

A ``.pth`` is a pickle; unpickled with ``weights_only=False`` it can run any code it names
(a model-zoo file, the released checkpoint from a file host, a file sent by a colleague).
Every checkpoint read by this project goes through :func:`load_checkpoint_file`:

* A model-zoo file name carries the first hex digits of the file's SHA-256 (MMDetection's
  ``publish_model`` convention: ``NAME-<8 hex>.pth``); they are checked, so a truncated download
  or a swapped file is named at once instead of surfacing later as odd weights.
* The pickle is read with ``weights_only=True``. The globals that mmengine's own checkpoints
  hold besides tensors (the message hub's ``HistoryBuffer``, the numpy arrays, scalars and
  dtypes inside it) are allowed by name (:data:`SAFE_GLOBALS`), so ``--resume`` and
  ``load_from`` work and end bit-identical. A file that names any other global is refused with
  an :class:`UntrustedCheckpointError` naming the file and the globals; nothing of it runs.
* For a file you trust, set the environment variable ``OMNIRIS_MM_TRUST_CHECKPOINTS=1``
  (:data:`TRUST_ENV`): every checkpoint is then read with ``weights_only=False``.

Importing this module registers the loader as mmengine's ``CheckpointLoader`` scheme for local
paths and for ``http(s)://`` (the ``open-mmlab://``, ``torchvision://`` and ``modelzoo://``
schemes download through the latter), so ``load_from``, ``init_cfg``, ``--resume``,
``tools/test.py``, the inferencer and ``mmengine.runner.load_checkpoint`` all take it; the
model converters and ``publish_model.py`` call :func:`load_checkpoint_file` directly. It
replaces mmengine's loaders (it does not wrap whatever was registered before), so the result
does not depend on the order in which modules are imported.
"""

import hashlib
import importlib
import os
import os.path as osp
import pickle
import re
from typing import List, Optional

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import checkpoint as mme_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

HASH_SUFFIX = re.compile(r'-([0-9a-f]{8,64})\.pth$')
TRUST_ENV = 'OMNIRIS_MM_TRUST_CHECKPOINTS'


def _numpy_globals() -> list:
    """numpy's pickle entry points, under the names numpy 1 and numpy 2 write."""
    try:
        multiarray = importlib.import_module('numpy._core.multiarray')
    except ImportError:  # numpy < 2
        multiarray = importlib.import_module('numpy.core.multiarray')
    out = [np.ndarray, np.dtype]
    for name in ('_reconstruct', 'scalar'):
        fn = getattr(multiarray, name)
        out += [(fn, f'numpy.core.multiarray.{name}'), (fn, f'numpy._core.multiarray.{name}')]
    # numpy >= 1.25 pickles a dtype through its class (numpy.dtypes.Float64DType, ...).
    for char in np.typecodes['All'].replace('O', ''):  # no object arrays
        cls = type(np.dtype(char))
        if cls is not np.dtype and cls not in out:
            out.append(cls)
    return out


_HISTORY_STATISTICS = ('min', 'max', 'current', 'mean')


def _history_buffer_getattr(obj, name):
    """``getattr`` as a pickle may call it: only for the statistics methods of ``HistoryBuffer``.

    mmengine pickles ``HistoryBuffer._statistics_methods`` (its ``__getstate__``) as
    ``getattr(HistoryBuffer, 'min')`` and so on; a general ``getattr`` would let a pickle reach
    any method of any allowed object (``ndarray.tofile`` writes files)."""
    if obj is HistoryBuffer and (name in _HISTORY_STATISTICS or name in HistoryBuffer._statistics_methods):
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint')


# What mmengine's checkpoints hold besides tensors and plain containers.
SAFE_GLOBALS = [HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr')] + _numpy_globals()


class UntrustedCheckpointError(pickle.UnpicklingError):
    """A checkpoint names a global outside :data:`SAFE_GLOBALS`; it was not unpickled."""


def trusted() -> bool:
    return os.environ.get(TRUST_ENV, '0') not in ('', '0')


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


def _allowed_names() -> set:
    names = set()
    for entry in SAFE_GLOBALS:
        if isinstance(entry, tuple):
            names.add(entry[1])
        else:
            names.add(f'{entry.__module__}.{entry.__qualname__}')
    return names


def unsafe_globals(path: str) -> List[str]:
    """The globals the pickle in ``path`` names that neither torch nor :data:`SAFE_GLOBALS` allows."""
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    allowed = _allowed_names()
    return [n for n in names if n not in allowed]


def load_checkpoint_file(filename: str, map_location=None, trust: Optional[bool] = None, mmap: bool = False):
    """Read the checkpoint ``filename`` (a local path): hash prefix checked, then
    ``weights_only=True`` with :data:`SAFE_GLOBALS` unless ``trust`` (default: the
    ``OMNIRIS_MM_TRUST_CHECKPOINTS`` environment variable)."""
    path = osp.expanduser(filename)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{filename} can not be found.')
    verify_hash_prefix(path)
    if trusted() if trust is None else trust:
        return torch.load(path, map_location=map_location, weights_only=False, mmap=mmap)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:
        try:
            names = unsafe_globals(path)
        except Exception:  # a file torch cannot even scan: report the original error
            names = []
        if names:
            what = f'it names {", ".join(names)}, which could run code when unpickled'
        else:  # torch's reason is the text after "WeightsUnpickler error:"
            reason = str(err).split('WeightsUnpickler error:')[-1].strip().split('\n\n')[0]
            what = f'its pickle was refused: {reason}'
        raise UntrustedCheckpointError(
            f'checkpoint {filename}: not loaded, {what} (the file was read with weights_only=True; nothing in '
            f'it was executed). If you trust this file, set {TRUST_ENV}=1 to load it with weights_only=False.'
        ) from None


def load_from_local(filename, map_location=None):
    return load_checkpoint_file(filename, map_location)


def load_from_http(filename, map_location=None, model_dir=None, progress=os.isatty(0)):
    """Download into torch hub's cache as mmengine does (rank 0 first, the other ranks after a
    barrier), then read the cached file as a local one."""
    from urllib.parse import urlparse

    from mmengine.dist import barrier, get_dist_info
    from torch.hub import download_url_to_file, get_dir

    model_dir = model_dir or osp.join(get_dir(), 'checkpoints')
    cached = osp.join(model_dir, osp.basename(urlparse(filename).path))
    rank, world_size = get_dist_info()
    if rank == 0 and not osp.exists(cached):
        os.makedirs(model_dir, exist_ok=True)
        download_url_to_file(filename, cached, progress=progress)  # writes a temporary file, then renames it
    if world_size > 1:
        barrier()
    return load_checkpoint_file(cached, map_location)


CheckpointLoader.register_scheme(prefixes='', loader=load_from_local, force=True)
CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), loader=load_from_http, force=True)
# mmengine's open-mmlab://, torchvision:// and modelzoo:// loaders call this module-level name.
mme_checkpoint.load_from_http = load_from_http
