"""Helpers every other part of the package may use; nothing here imports the rest of the package."""

from .lru_cache import BytesLRUCache

__all__ = ['BytesLRUCache']
