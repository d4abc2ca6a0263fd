"""The content-addressed cache on disk: one folder per entry, committed atomically.

Layout: ``ROOT/KIND/KEY[:2]/KEY/`` holding the entry's files and ``manifest.json`` with each
file's size and SHA-256. An entry is written in a temporary folder beside its final place and
renamed into it, so readers see a whole entry or none; ``verify`` re-hashes the files. Reading
an entry touches its manifest, whose mtime is the entry's last use (``cache gc --older-than``).

Several processes (and machines sharing the folder) may use one cache: ``lock(kind, key)`` is an
OS file lock per entry under ``ROOT/.locks/``, held while an entry is made, so no two processes
make the same entry; the OS releases it when a process dies, even by kill -9.

A render holds a *lease* (``lease(keys)``) on every entry it reads or writes: a file under
``ROOT/.leases/`` listing them, live while its owner holds an OS lock on a sibling file. `cache
gc` and `cache clear` hold the store-wide ``gc_lock()`` while they decide and delete, and a lease
takes it to register or grow, so a render either registers before gc looks (its entries are
kept) or after gc has finished deleting (it finds them missing and makes them again).
Pure Python: the planner asks it what is cached without loading any model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from filelock import FileLock

from .protocol import Entry, InUse, StoreError

MANIFEST = "manifest.json"
ENV_VAR = "FRAMEPACK_CACHE"
LOCKS = ".locks"
LEASES = ".leases"
GC_LOCK = "gc.lock"
STALE_SECONDS = 3600  # a temporary folder this old belongs to a process that died


class CommittedDir(type(Path())):  # type: ignore[misc]
    """What ``put`` returns: the entry's folder, and whether this put committed it (False when
    another writer's entry for the key was there first: read it back)."""
    won = True


def default_cache_dir() -> Path:
    """``$FRAMEPACK_CACHE``, else the platform's user cache folder."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("framepack-render", appauthor=False))


class LocalStore:
    def __init__(self, root: str | os.PathLike[str] | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    @property
    def url(self) -> str:
        return str(self.root)

    @contextmanager
    def _failing(self, doing: str) -> Iterator[None]:
        """A full disk or a folder we may not write: one line naming the cache."""
        try:
            yield
        except OSError as error:
            raise StoreError(f"cache {self.root}: {doing}: {error.strerror or error}"
                             ) from error

    def entry_dir(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / key

    def has(self, kind: str, key: str) -> bool:
        """Committed (a manifest exists). Cheap: for plans; readers call ``verify``."""
        return (self.entry_dir(kind, key) / MANIFEST).is_file()

    def put(self, kind: str, key: str, files: dict[str, bytes], *, replace: bool = False
            ) -> CommittedDir:
        """Write an entry atomically. The first writer of a key wins and a later one leaves
        it be (``won`` False); ``replace`` first removes an existing entry (one that failed
        verification)."""
        with self._failing(f"cannot write {kind}/{key[:2]}/{key}"):
            return self._put(kind, key, files, replace)

    def _put(self, kind: str, key: str, files: dict[str, bytes], replace: bool
             ) -> CommittedDir:
        final = self.entry_dir(kind, key)
        won = True
        if replace:
            self.discard(kind, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=final.parent))
        try:
            manifest = {}
            for name, data in files.items():
                (staging / name).write_bytes(data)
                manifest[name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            (staging / MANIFEST).write_text(json.dumps({"kind": kind, "key": key,
                                                        "files": manifest}, indent=1))
            try:
                os.replace(staging, final)
            except OSError:
                if not self.has(kind, key):  # not someone else's entry: a real error
                    raise
                won = False
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        committed = CommittedDir(final)
        committed.won = won
        return committed

    def read(self, kind: str, key: str, name: str) -> bytes | None:
        """One file of an entry, checked against its manifest; None if missing or corrupt."""
        folder = self.entry_dir(kind, key)
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            meta = manifest["files"][name]
            data = (folder / name).read_bytes()
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if manifest.get("key") != key or len(data) != meta["size"] or \
                hashlib.sha256(data).hexdigest() != meta["sha256"]:
            return None
        try:
            os.utime(folder / MANIFEST)  # last use, for `cache gc --older-than`
        except OSError:
            pass  # a read-only cache is still readable
        return data

    def verify(self, kind: str, key: str) -> bool:
        """Every file present with its recorded size and hash."""
        try:
            manifest = json.loads((self.entry_dir(kind, key) / MANIFEST).read_text())
            names = list(manifest["files"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return all(self.read(kind, key, name) is not None for name in names)

    def discard(self, kind: str, key: str) -> None:
        """Remove an entry: renamed aside first, so no reader sees it half deleted."""
        final = self.entry_dir(kind, key)
        if not final.exists():
            return
        doomed = final.with_name(f".{key[:12]}-discard-{os.getpid()}-{os.urandom(4).hex()}")
        try:
            os.replace(final, doomed)
        except OSError:
            return
        shutil.rmtree(doomed, ignore_errors=True)

    # ------------------------------------------------------------ sharing

    def lock_path(self, kind: str, key: str) -> Path:
        return self.root / LOCKS / kind / key[:2] / f"{key}.lock"

    def lock(self, kind: str, key: str) -> FileLock:
        """The entry's lock; hold it while making the entry (``with store.lock(k, key):``)."""
        path = self.lock_path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(path)

    # ------------------------------------------------------------ housekeeping

    def entries(self, kinds: tuple[str, ...] | None = None) -> Iterator[Entry]:
        """Every committed entry (temporary and lock files are not entries)."""
        if not self.root.is_dir():
            return
        for kind_dir in sorted(self.root.iterdir()):
            if kind_dir.name.startswith(".") or not kind_dir.is_dir():
                continue
            if kinds is not None and kind_dir.name not in kinds:
                continue
            for folder in sorted(kind_dir.glob("*/*")):
                manifest = folder / MANIFEST
                if folder.name.startswith(".") or not manifest.is_file():
                    continue
                try:
                    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
                    used = manifest.stat().st_mtime
                except OSError:  # removed while we looked
                    continue
                yield Entry(kind_dir.name, folder.name, folder, size, used)

    def leftovers(self, older_than: float = STALE_SECONDS) -> list[Path]:
        """Temporary folders of writers that died (kill -9, power loss), idle lock files, and
        the leases of renders that died (whatever their age: their lock says so)."""
        if not self.root.is_dir():
            return []
        cutoff = time.time() - older_than
        found = [self._lease_path(name, ".lock") for name, live in self._leases() if not live]
        candidates = [*self.root.glob("*/*/.*"), *(self.root / LOCKS).glob("*/*/*.lock")]
        for path in candidates:
            try:
                if path.stat().st_mtime < cutoff:
                    found.append(path)
            except OSError:  # removed while we looked
                continue
        return found

    def remove(self, path: Path | str) -> None:
        """Remove a leftover: a dead writer's temporary folder, an idle lock file, or a dead
        render's lease (its files go with its lock). Hold ``gc_lock()`` for a lease."""
        path = Path(path)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            return
        lease = path.parent == self.root / LEASES
        doomed = [self._lease_path(_lease_name(path), s) for s in (".json", ".tmp")] \
            if lease else []
        lock = FileLock(path, thread_local=False)
        try:  # never pull a lock file from under a process holding it
            lock.acquire(timeout=0)
        except Exception:
            return
        try:
            for other in doomed:
                other.unlink(missing_ok=True)
            _unlink(path)
        finally:
            lock.release()

    def clear(self) -> None:
        """Remove everything; entries first, so a reader never sees a half-removed entry.
        Hold ``gc_lock()`` with no live lease: the lock and the lease folder stay."""
        for entry in list(self.entries()):
            self.discard(entry.kind, entry.key)
        for path in self.leftovers(older_than=0):
            self.remove(path)
        if self.root.is_dir():
            for child in self.root.iterdir():
                if child.is_dir() and child.name not in (LOCKS, LEASES):
                    shutil.rmtree(child, ignore_errors=True)
            for child in (self.root / LOCKS).glob("*"):
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)

    # ------------------------------------------------------------ leases

    def lease(self, keys: set[tuple[str, str]]) -> Lease:
        """Keep ``keys`` (kind, key) from `cache gc` while the lease lives: ``with
        store.lease(keys) as lease: ... lease.add(kind, key)``. Take it before looking
        anything up."""
        return Lease(self, keys)

    def gc_lock(self) -> FileLock:
        """Store-wide: held by gc and clear while they decide and delete, and briefly by a
        lease registering or growing."""
        path = self.root / LOCKS / GC_LOCK
        path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(path)

    def in_use(self) -> InUse:
        """The entries of every live lease. Hold ``gc_lock()``, so that none registers or
        grows meanwhile (a lease file is then always whole)."""
        keys: set[tuple[str, str]] = set()
        renders = 0
        for name, live in self._leases():
            if not live:
                continue
            renders += 1
            try:
                listed = json.loads(self._lease_path(name, ".json").read_text())["entries"]
            except FileNotFoundError:  # ending: its render has returned
                continue
            keys |= {(str(kind), str(key)) for kind, key in listed}
        return InUse(frozenset(keys), renders)

    def live_leases(self) -> int:
        return sum(live for _, live in self._leases())

    def _leases(self) -> list[tuple[str, bool]]:
        """Every lease by name, with whether its owner still holds its lock."""
        folder = self.root / LEASES
        if not folder.is_dir():
            return []
        names = sorted({_lease_name(p) for p in folder.iterdir()})
        return [(name, _held(self._lease_path(name, ".lock"))) for name in names]

    def _lease_path(self, name: str, suffix: str) -> Path:
        return self.root / LEASES / f"{name}{suffix}"


class Lease:
    """Entries a live render reads or writes; `cache gc` and `cache clear` keep them. Its file
    lists them; an OS lock on a sibling file, held for the lease's life, says it is live, and
    the OS drops it when the process dies, even by kill -9."""

    def __init__(self, store: LocalStore, keys: set[tuple[str, str]]):
        self.store = store
        self.keys = set(keys)
        host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"
        self.name = f"{host}-{os.getpid()}-{os.urandom(6).hex()}"  # no dots: see _lease_name
        self.created = time.time()
        self._lock: FileLock | None = None

    def __enter__(self) -> Lease:
        with self.store._failing("cannot register a lease"):  # a cache we may not write
            return self._register()

    def _register(self) -> Lease:
        path = self.store._lease_path(self.name, ".lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path, thread_local=False)  # released by whichever thread ends it
        with self.store.gc_lock():  # never while gc decides what to remove
            lock.acquire(timeout=0)  # a fresh name: nobody else has it
            self._lock = lock
            try:
                self._write()
            except BaseException:
                self.__exit__()
                raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._lock is None:
            return
        for suffix in (".json", ".tmp"):  # before the lock: gc then reads no stale entries
            self.store._lease_path(self.name, suffix).unlink(missing_ok=True)
        try:
            _unlink(self.store._lease_path(self.name, ".lock"))
        finally:
            self._lock.release()
            self._lock = None

    def add(self, kind: str, key: str) -> None:
        """Cover an entry not foreseen; call it before reading or writing the entry."""
        if (kind, key) in self.keys:
            return
        with self.store.gc_lock():  # a gc deciding now has its list; the entry comes after
            self.keys.add((kind, key))
            if self._lock is not None:
                self._write()

    def __contains__(self, item: object) -> bool:
        return item in self.keys

    def _write(self) -> None:
        """Atomically, so gc reads the old list or the new one."""
        data = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "created": self.created, "entries": sorted(map(list, self.keys))})
        temporary = self.store._lease_path(self.name, ".tmp")
        temporary.write_text(data)
        os.replace(temporary, self.store._lease_path(self.name, ".json"))


def _lease_name(path: Path) -> str:
    return path.name.partition(".")[0]


def _held(path: Path) -> bool:
    """Whether another holder has the lock; one we cannot open counts as held."""
    lock = FileLock(path, thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Exception:  # filelock's Timeout, or a folder we may not write
        return True
    lock.release()
    return False


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # Windows: still open elsewhere; filelock removes it on release there
        pass
