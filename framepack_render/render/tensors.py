"""Tensors in the content-addressed cache: safetensors entries, verified on every read.

A missing or corrupt entry reads as None, and a corrupt one is removed, so the caller
re-renders it; nothing unverified is ever used.
"""

from __future__ import annotations

import torch
from safetensors.torch import load, save

from ..cache import CacheStore

FILE = "tensors.safetensors"


class TensorCache:
    def __init__(self, store: CacheStore, *, read: bool = True):
        self.store = store
        self.read = read  # False with --force: render everything again, overwriting entries
        self.corrupt: list[tuple[str, str]] = []

    def has(self, kind: str, key: str) -> bool:
        return self.read and self.store.has(kind, key)

    def load(self, kind: str, key: str) -> dict[str, torch.Tensor] | None:
        if not self.has(kind, key):
            return None
        data = self.store.read(kind, key, FILE)
        if data is None:
            self.corrupt.append((kind, key))
            self.store.discard(kind, key)
            return None
        return load(data)

    def save(self, kind: str, key: str, tensors: dict[str, torch.Tensor]) -> None:
        data = save({name: t.contiguous() for name, t in tensors.items()})
        self.store.put(kind, key, {FILE: data}, replace=True)
