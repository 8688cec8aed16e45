"""A least-recently-used cache bounded by the bytes of what it holds.

``functools.lru_cache`` bounds the number of entries, not their size; the decoded-image cache of the
data pipeline and the inferencer's reference-token cache both hold entries of very different sizes
(a 128 x 128 image and a 1333 x 800 one; a tiny model's tokens and Swin-B's), so both are bounded
in bytes by this one class.
"""

from collections import OrderedDict
from typing import Any, Callable, Hashable, Optional


def _identity(value: Any) -> Any:
    return value


def nbytes_of(value: Any) -> int:
    """The bytes of a NumPy array or a torch tensor (``nbytes``, which both have)."""
    return int(value.nbytes)


class BytesLRUCache:
    """Entries up to ``max_bytes`` in all; the least recently used go first.

    An entry larger than the whole budget is not kept. ``copy_in`` and ``copy_out`` (identity by
    default) let a caller keep private copies, so nobody can write into a cached value.

    Args:
        max_bytes (int): The budget. 0 keeps nothing. Defaults to 0.
        copy_in (callable, optional): Applied to a value before it is kept.
        copy_out (callable, optional): Applied to a kept value before it is returned.
    """

    def __init__(
        self,
        max_bytes: int = 0,
        copy_in: Optional[Callable[[Any], Any]] = None,
        copy_out: Optional[Callable[[Any], Any]] = None,
    ):
        if max_bytes < 0:
            raise ValueError(f'max_bytes must be >= 0, got {max_bytes}')
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._copy_in = copy_in or _identity
        self._copy_out = copy_out or _identity
        self._items: OrderedDict[Hashable, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def get(self, key: Hashable) -> Optional[Any]:
        """The value of ``key`` (now the most recently used), or None."""
        value = self._items.get(key)
        if value is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return self._copy_out(value)

    def put(self, key: Hashable, value: Any) -> None:
        """Keep ``value`` under ``key``, dropping the least recently used entries past the budget."""
        if key in self._items:
            self.nbytes -= nbytes_of(self._items.pop(key))
        size = nbytes_of(value)
        if size > self.max_bytes:
            return
        self._items[key] = self._copy_in(value)
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            self.nbytes -= nbytes_of(self._items.popitem(last=False)[1])

    def clear(self) -> None:
        """Drop every entry and reset the counts."""
        self._items.clear()
        self.nbytes = self.hits = self.misses = 0
