"""What a cache store offers the renderer, the planner and `framepack cache`, wherever it lives.

Two stores satisfy ``Store``: ``LocalStore`` (a folder, OS file locks) and ``FsspecStore`` (any
fsspec URL: s3://, gs://, az://, memory://). Both keep one folder (or prefix) per entry,
``KIND/KEY[:2]/KEY/``, whose ``manifest.json`` is the commit point: an entry exists iff its
manifest does, and every read is checked against the sizes and SHA-256 the manifest records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol, runtime_checkable


class StoreError(Exception):
    """A store that cannot do what was asked (full disk, permission denied, throttled, no
    credentials). The message is one line naming the store's URL, never its credentials."""


class StoreUnavailable(StoreError):
    """A store that cannot be used at all (bad URL, missing bucket, unreachable endpoint):
    found before anything is rendered or written."""


@dataclass(frozen=True)
class Entry:
    kind: str
    key: str
    path: Path | str  # a folder, or a URL for a store that is not a local folder
    size: int  # bytes, manifest included
    used: float  # last use, seconds since the epoch


@dataclass(frozen=True)
class InUse:
    """What live renders hold: their entries and how many renders."""
    keys: frozenset[tuple[str, str]]
    renders: int


class Committed(Protocol):
    """What ``put`` returns. ``won`` is False when another writer committed the key first:
    its entry is the entry now, and the caller reads it back instead of using its own bytes."""

    @property
    def won(self) -> bool: ...


class EntryLock(Protocol):
    """Held while making an entry (``with lock:``). ``acquire`` raises ``TimeoutError`` when
    ``timeout`` (seconds; -1 waits for ever) runs out. Reentrant within a thread."""

    def acquire(self, timeout: float = -1) -> object: ...

    def release(self) -> None: ...

    def __enter__(self) -> object: ...

    def __exit__(self, *exc: object) -> object: ...


class StoreLease(Protocol):
    """Entries a live render reads or writes; gc keeps them while the lease lives."""

    keys: set[tuple[str, str]]

    def __enter__(self) -> StoreLease: ...

    def __exit__(self, *exc: object) -> None: ...

    def add(self, kind: str, key: str) -> None: ...

    def __contains__(self, item: object) -> bool: ...


@runtime_checkable
class Store(Protocol):
    @property
    def url(self) -> str:
        """Where the store is, for messages and reports (a path, or a URL without secrets)."""
        ...

    def has(self, kind: str, key: str) -> bool:
        """Committed (a manifest exists). Cheap: for plans; readers get ``read``'s check."""
        ...

    def read(self, kind: str, key: str, name: str) -> bytes | None:
        """One file of an entry, checked against its manifest; None if missing or corrupt."""
        ...

    def put(self, kind: str, key: str, files: dict[str, bytes], *, replace: bool = False
            ) -> Committed:
        """Commit an entry: payload first, manifest last. The first committed manifest wins;
        ``replace`` first removes an existing entry (one that failed verification)."""
        ...

    def discard(self, kind: str, key: str) -> None:
        """Remove an entry, manifest first, so no reader sees it half deleted."""
        ...

    def verify(self, kind: str, key: str) -> bool:
        """Every file present with its recorded size and hash."""
        ...

    def lock(self, kind: str, key: str) -> EntryLock:
        """The entry's lock, held while making it so two workers rarely make it twice."""
        ...

    def lock_path(self, kind: str, key: str) -> Path | str:
        """The id of the entry's lock, for ``remove`` once the entry is gone."""
        ...

    def lease(self, keys: set[tuple[str, str]]) -> StoreLease:
        """Keep ``keys`` from gc while the lease lives; take it before looking anything up."""
        ...

    def gc_lock(self) -> EntryLock:
        """Store-wide: held by gc and clear while they decide and delete, and briefly by a
        lease registering or growing."""
        ...

    def in_use(self) -> InUse:
        """The entries of every live lease (hold ``gc_lock()``)."""
        ...

    def live_leases(self) -> int: ...

    def entries(self, kinds: tuple[str, ...] | None = None) -> Iterator[Entry]:
        """Every committed entry."""
        ...

    def leftovers(self, older_than: float = ...) -> list[Path | str]:
        """What dead writers and renders left: payload without a manifest, stale locks and
        leases. Each is an id for ``remove``."""
        ...

    def remove(self, path: Path | str) -> None:
        """Remove one leftover, unless it has come back to life meanwhile."""
        ...

    def clear(self) -> None:
        """Remove everything (hold ``gc_lock()`` with no live lease)."""
        ...

