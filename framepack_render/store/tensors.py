"""Tensors in the content-addressed cache: safetensors entries, verified on every read.

A missing or corrupt entry reads as None, and a corrupt one is removed, so the caller
re-renders it; nothing unverified is ever used. ``obtain`` makes a missing entry under the
entry's lock, so processes sharing a cache rarely make one twice; when two did (an advisory
lock on an object store), the first committed entry wins and both carry on from it. Encodings
(prompts, images) are also kept in memory, shared by every shot a process renders. With a
``lease``, every entry looked up or written is covered by it first, so `cache gc` keeps it while
the render lives.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch
from safetensors.torch import load, save

from .protocol import Store, StoreLease

FILE = "tensors.safetensors"
Tensors = dict[str, torch.Tensor]


class Memo:
    """Recently used entries in memory, least recently used dropped beyond ``budget`` bytes."""

    def __init__(self, budget: int = 1 << 30):
        self.budget = budget
        self.size = 0
        self._items: OrderedDict[tuple[str, str], Tensors] = OrderedDict()

    def get(self, kind: str, key: str) -> Tensors | None:
        item = self._items.get((kind, key))
        if item is not None:
            self._items.move_to_end((kind, key))
        return item

    def put(self, kind: str, key: str, tensors: Tensors) -> None:
        if (kind, key) in self._items:
            return
        self._items[(kind, key)] = tensors
        self.size += _nbytes(tensors)
        while self.size > self.budget and len(self._items) > 1:
            _, dropped = self._items.popitem(last=False)
            self.size -= _nbytes(dropped)

    def __len__(self) -> int:
        return len(self._items)


def _nbytes(tensors: Tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


class TensorCache:
    """``wait`` is called while another process holds an entry's lock (every ~0.2 s); it may
    raise to give up (a cancelled render)."""

    MEMO_KINDS = ("prompt", "image")

    def __init__(self, store: Store, *, read: bool = True, memo: Memo | None = None,
                 wait: Callable[[str, str], None] | None = None,
                 lease: StoreLease | None = None):
        self.store = store
        self.lease = lease
        self.read = read  # False with --force: render everything again, overwriting entries
        self.memo = memo if memo is not None else Memo()
        self.wait = wait
        self.corrupt: list[tuple[str, str]] = []

    def has(self, kind: str, key: str) -> bool:
        self._cover(kind, key)  # every read starts here
        return self.read and (self.memo.get(kind, key) is not None or self.store.has(kind, key))

    def load(self, kind: str, key: str) -> Tensors | None:
        if kind in self.MEMO_KINDS and (item := self.memo.get(kind, key)) is not None:
            return item
        if not self.has(kind, key):
            return None
        data = self.store.read(kind, key, FILE)
        if data is None:
            with self.locked(kind, key):
                data = self.store.read(kind, key, FILE)  # replaced meanwhile by its maker?
                if data is None:
                    self.corrupt.append((kind, key))
                    self.store.discard(kind, key)
                    return None
        tensors = load(data)
        if kind in self.MEMO_KINDS:
            self.memo.put(kind, key, tensors)
        return tensors

    def save(self, kind: str, key: str, tensors: Tensors) -> Tensors:
        """Commit ``tensors``; the committed entry's tensors are returned, another writer's
        when it committed the key first (what is generated next must follow from those)."""
        self._cover(kind, key)
        data = save({name: t.contiguous() for name, t in tensors.items()})
        # Without --force an existing entry is someone else's: keep it, never pull it from
        # under a reader. Corrupt entries were discarded when they were read.
        if not self.store.put(kind, key, {FILE: data}, replace=not self.read).won:
            tensors = self._adopt(kind, key, data, tensors)
        if kind in self.MEMO_KINDS:
            self.memo.put(kind, key, tensors)
        return tensors

    def _adopt(self, kind: str, key: str, ours: bytes, tensors: Tensors) -> Tensors:
        """The winner's tensors, read back and verified; ours again if its entry is unusable."""
        theirs = self.store.read(kind, key, FILE)
        if theirs == ours:
            return tensors
        if theirs is not None:
            return load(theirs)
        self.corrupt.append((kind, key))
        self.store.put(kind, key, {FILE: ours}, replace=True)
        return tensors

    def obtain(self, kind: str, key: str, make: Callable[[], Tensors]) -> tuple[Tensors, bool]:
        """The entry, made by ``make`` and saved if missing; True when it was already there
        (possibly made by another process while this one waited for the lock)."""
        found = self.load(kind, key)
        if found is not None:
            return found, True
        with self.locked(kind, key):
            found = self.load(kind, key)
            if found is not None:
                return found, True
            return self.save(kind, key, make()), False

    def _cover(self, kind: str, key: str) -> None:
        """Before the entry is touched: the lease lists what the plan foresaw, not always all."""
        if self.lease is not None:
            self.lease.add(kind, key)

    def locked(self, kind: str, key: str) -> "_Held":
        """Hold the entry's lock (``with cache.locked(kind, key):``), waiting as needed."""
        lock = self.store.lock(kind, key)
        while True:
            try:
                lock.acquire(timeout=0.2)
                return _Held(lock)
            except TimeoutError:  # filelock's Timeout is a TimeoutError
                if self.wait is not None:
                    self.wait(kind, key)


class _Held:
    def __init__(self, lock):
        self.lock = lock

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self.lock.release()
