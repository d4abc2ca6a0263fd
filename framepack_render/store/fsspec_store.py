"""The cache on any fsspec filesystem: s3://, gs://, az://, memory://, or file:// with options.

Same layout as ``LocalStore``: ``ROOT/KIND/KEY[:2]/KEY/`` holding the payload and
``manifest.json``. Object stores have neither rename nor locks, so:

* Commit: payload objects first, under content-addressed names
  (``tensors.<sha256>.safetensors``: identical bytes get the identical name, so a second writer's
  overwrite is harmless and different bytes never clobber a committed payload), then the manifest
  by exclusive create (S3 ``If-None-Match: *``, GCS ``ifGenerationMatch=0``, ``O_EXCL`` on a
  disk). The manifest is the commit point: an entry exists iff its manifest does, and the first
  manifest wins. A losing writer removes the payload the winner does not reference, and its
  caller reads the winner's entry back and carries on from it.
* Reads check the size and SHA-256 the manifest records. Last use (for ``gc --older-than``) is
  the newest of the manifest and a zero-byte ``used`` object beside it, rewritten at most hourly
  by a process.
* Leases and locks are small JSON objects under ``ROOT/.leases/`` and ``ROOT/.locks/``, made by
  exclusive create and holding an expiry time that a background thread pushes forward while they
  live; an expired one belongs to a process that died (machines' clocks are assumed to agree to
  within a few seconds). Entry locks are advisory: a stale one is taken over by deleting and
  re-creating it, which two waiters may rarely both do at once; the manifest commit reconciles
  two workers that made one entry.
* Every failure of the filesystem is a ``StoreError``: one line naming the URL (credentials left
  out); nothing half written is ever committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
import weakref
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ..urls import describe, redact, secrets_of
from .local import GC_LOCK, LEASES, LOCKS, MANIFEST, STALE_SECONDS
from .protocol import Entry, InUse, StoreError, StoreUnavailable

USED = "used"  # zero-byte object whose modification time is the entry's last use
TTL = 60.0  # seconds a lock or lease lives without a heartbeat
TOUCH_EVERY = 3600.0  # rewrite an entry's ``used`` at most this often per process
POLL = (0.1, 2.0)  # a waiting lock polls from every 0.1 s, backing off to every 2 s
# Filesystems without folders (or where making one makes a bucket): never ``makedirs`` there.
FLAT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory", "oci", "oss", "r2",
        "cos", "tos", "hf", "gdrive", "dropbox"}


@dataclass(frozen=True)
class Commit:
    url: str
    won: bool


class Timeout(TimeoutError):
    """A lock still held by another worker when ``acquire``'s timeout ran out."""


class FsspecStore:
    """A cache on an fsspec URL. ``storage_options`` go to the filesystem beside what fsspec
    reads from its own configuration and ``FSSPEC_<PROTOCOL>_<OPTION>`` variables."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None, *,
                 ttl: float = TTL):
        import fsspec

        self._raw_url = url
        self._options = dict(storage_options or {})
        self._secrets = secrets_of(url, self._options)
        self.url = redact(url).rstrip("/")
        self.ttl = ttl
        try:
            self.fs, root = fsspec.core.url_to_fs(url, **{"use_listings_cache": False,
                                                          **self._options})
        except Exception as error:  # unknown protocol, its package missing, bad options
            raise StoreUnavailable(f"cache {self.url}: {self._reason(error)}") from None
        self.root = root.rstrip("/")
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (
            self.fs.protocol,)
        self._flat = bool(FLAT & set(protocols))
        # s3fs sizes a file (a HEAD) before reading it concurrently; ours are read whole
        self._cat = {"max_concurrency": 1} if getattr(self.fs, "max_concurrency", 1) > 1 else {}
        self._locks: weakref.WeakValueDictionary[str, ObjectLock] = \
            weakref.WeakValueDictionary()
        self._guard = threading.Lock()
        self._heartbeat = Heartbeat(ttl / 4)
        self._touched: dict[str, float] = {}

    def __reduce__(self) -> tuple[Callable[..., FsspecStore], tuple[Any, ...]]:
        """Workers (Ray) get a fresh store of their own: threads and locks stay here."""
        return _rebuild, (self._raw_url, self._options, self.ttl)

    def __repr__(self) -> str:
        return f"FsspecStore({self.url!r})"

    def check(self) -> None:
        """Fail now, before anything renders, when the store cannot be used."""
        try:
            self.fs.ls(self.root, detail=False)
        except FileNotFoundError:  # an empty cache, or no bucket to hold one
            bucket = self._bucket()
            if bucket is not None and not self.fs.exists(bucket):
                raise StoreUnavailable(f"cache {self.url}: bucket {bucket!r} does not exist"
                                       ) from None
        except Exception as error:
            raise StoreUnavailable(f"cache {self.url}: cannot reach the store: "
                                   f"{self._reason(error)}") from None

    # ------------------------------------------------------------ entries

    def entry_dir(self, kind: str, key: str) -> str:
        return f"{self.root}/{kind}/{key[:2]}/{key}"

    def has(self, kind: str, key: str) -> bool:
        return self._get(f"{self.entry_dir(kind, key)}/{MANIFEST}") is not None

    def read(self, kind: str, key: str, name: str) -> bytes | None:
        folder = self.entry_dir(kind, key)
        manifest = self._manifest(folder)
        if manifest is None or manifest.get("key") != key:
            return None
        try:
            meta = manifest["files"][name]
            size, digest = int(meta["size"]), str(meta["sha256"])
            stored = _plain_name(str(meta.get("object", name)))  # a LocalStore entry: no object
        except (TypeError, KeyError, ValueError, AttributeError):
            return None
        data = self._get(f"{folder}/{stored}")
        if data is None or len(data) != size or hashlib.sha256(data).hexdigest() != digest:
            return None
        self._touch(folder)
        return data

    def verify(self, kind: str, key: str) -> bool:
        manifest = self._manifest(self.entry_dir(kind, key))
        if manifest is None:
            return False
        return all(self.read(kind, key, name) is not None for name in manifest["files"])

    def put(self, kind: str, key: str, files: dict[str, bytes], *, replace: bool = False
            ) -> Commit:
        folder = self.entry_dir(kind, key)
        if replace:
            self.discard(kind, key)
        listing = {}
        for name, data in files.items():  # payload first
            digest = hashlib.sha256(data).hexdigest()
            stored = payload_name(name, digest)
            self._write_payload(f"{folder}/{stored}", data)
            listing[name] = {"size": len(data), "sha256": digest, "object": stored}
        manifest = json.dumps({"kind": kind, "key": key, "files": listing}, indent=1)
        won = self._create(f"{folder}/{MANIFEST}", manifest.encode())  # the commit point
        if not won:
            self._drop_unreferenced(folder, {meta["object"] for meta in listing.values()})
        return Commit(self._display(folder), won)

    def discard(self, kind: str, key: str) -> None:
        folder = self.entry_dir(kind, key)
        manifest = f"{folder}/{MANIFEST}"
        objects = [p for p in self._find(folder) if p != manifest]
        self._rm([manifest])  # uncommitted first: no reader trusts what goes next
        self._rm(objects)
        self._touched.pop(folder, None)

    # ------------------------------------------------------------ sharing

    def lock_path(self, kind: str, key: str) -> str:
        return self._display(f"{self.root}/{LOCKS}/{kind}/{key[:2]}/{key}.lock")

    def lock(self, kind: str, key: str) -> ObjectLock:
        return self._lock(f"{self.root}/{LOCKS}/{kind}/{key[:2]}/{key}.lock")

    def gc_lock(self) -> ObjectLock:
        return self._lock(f"{self.root}/{LOCKS}/{GC_LOCK}")

    def lease(self, keys: set[tuple[str, str]]) -> ObjectLease:
        return ObjectLease(self, keys)

    def in_use(self) -> InUse:
        keys: set[tuple[str, str]] = set()
        renders = 0
        for _, body, live in self._leases():
            if live:
                renders += 1
                keys |= _lease_keys(body)
        return InUse(frozenset(keys), renders)

    def live_leases(self) -> int:
        return sum(live for _, _, live in self._leases())

    def _lock(self, path: str) -> ObjectLock:
        """One lock object per path in a process, so a thread may take it again (reentrant)."""
        with self._guard:
            lock = self._locks.get(path)
            if lock is None:
                lock = self._locks[path] = ObjectLock(self, path)
            return lock

    def _leases(self) -> list[tuple[str, dict[str, Any], bool]]:
        """Every lease: its path, what it says, and whether it is live (not expired)."""
        found = []
        now = time.time()
        for path in sorted(self._find(f"{self.root}/{LEASES}")):
            body = self._read_json(path)
            if body is not None:  # else it ended while we looked
                found.append((path, body, _expires(body) > now))
        return found

    # ------------------------------------------------------------ housekeeping

    def entries(self, kinds: tuple[str, ...] | None = None) -> Iterator[Entry]:
        for (kind, key), objects in sorted(self._entry_objects().items()):
            if (kinds is not None and kind not in kinds) or MANIFEST not in objects:
                continue
            used = max(_mtime(objects[name]) for name in (MANIFEST, USED) if name in objects)
            size = sum(int(info.get("size") or 0) for info in objects.values())
            yield Entry(kind, key, self._display(self.entry_dir(kind, key)), size, used)

    def leftovers(self, older_than: float = STALE_SECONDS) -> list[str]:
        """Expired leases and locks, whatever their age (their holders died), and payload no
        manifest references: at once when the lease of its writer expired, else once it is
        ``older_than`` (a writer without a lease may still be about to commit it)."""
        now = time.time()
        leases = self._leases()
        live = set().union(*(_lease_keys(body) for _, body, alive in leases if alive))
        dead = set().union(*(_lease_keys(body) for _, body, alive in leases if not alive))
        found = [self._display(path) for path, _, alive in leases if not alive]
        for path in sorted(self._find(f"{self.root}/{LOCKS}")):
            body = self._read_json(path)
            if body is None or _expires(body) < now:
                found.append(self._display(path))
        for (kind, key), objects in sorted(self._entry_objects().items()):
            if (kind, key) in live:
                continue
            for name in self._unreferenced(kind, key, objects):
                if (kind, key) in dead or _mtime(objects[name]) < now - older_than:
                    found.append(self._display(f"{self.entry_dir(kind, key)}/{name}"))
        return found

    def remove(self, path: Path | str) -> None:
        """Remove a leftover, unless it came back to life: a lease or lock refreshed, payload
        a manifest now references."""
        target = self._strip(str(path))
        if not target.startswith(self.root + "/"):
            return  # not ours
        relative = target[len(self.root) + 1:]
        if relative.startswith((f"{LEASES}/", f"{LOCKS}/")):
            body = self._read_json(target)
            if body is None or _expires(body) < time.time():
                self._rm([target])
            return
        folder, _, name = target.rpartition("/")
        manifest = self._manifest(folder)
        if name != MANIFEST and (manifest is None or name not in _objects(manifest)):
            self._rm([target])

    def clear(self) -> None:
        """Every manifest first (no entry stays readable while its payload goes), then the
        rest; live locks and leases stay."""
        objects = self._entry_objects()
        self._rm([f"{self.entry_dir(kind, key)}/{MANIFEST}"
                  for (kind, key), names in objects.items() if MANIFEST in names])
        self._rm([f"{self.entry_dir(kind, key)}/{name}"
                  for (kind, key), names in objects.items() for name in names
                  if name != MANIFEST])
        self._touched.clear()
        for path in self.leftovers(older_than=0):
            self.remove(path)

    def _entry_objects(self) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
        """Every object in an entry's folder, by (kind, key) and name, from one listing."""
        found: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
        for path, info in self._find(self.root).items():
            parts = path[len(self.root) + 1:].split("/")
            if len(parts) != 4 or parts[0].startswith(".") or parts[2][:2] != parts[1]:
                continue
            kind, _, key, name = parts
            found[(kind, key)][name] = info
        return found

    def _unreferenced(self, kind: str, key: str, objects: dict[str, Any]) -> list[str]:
        """Names in an entry's folder that no manifest references. The manifest is read only
        when the folder holds more than the one payload every entry has."""
        payload = [name for name in objects if name not in (MANIFEST, USED)]
        if MANIFEST not in objects:
            return sorted(objects)
        if len(payload) <= 1:
            return []
        manifest = self._manifest(self.entry_dir(kind, key))
        referenced = _objects(manifest) if manifest is not None else set(payload)
        return sorted(set(payload) - referenced)

    # ------------------------------------------------------------ filesystem

    def _manifest(self, folder: str) -> dict[str, Any] | None:
        body = self._read_json(f"{folder}/{MANIFEST}")
        if body is None or not isinstance(body.get("files"), dict):
            return None
        return body

    def _read_json(self, path: str) -> dict[str, Any] | None:
        data = self._get(path)
        try:
            body = json.loads(data) if data is not None else None
        except ValueError:  # being written (a disk), or damaged
            return None
        return body if isinstance(body, dict) else None

    def _get(self, path: str) -> bytes | None:
        try:
            return self.fs.cat_file(path, **self._cat)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except Exception as error:
            raise self._fail("cannot read", path, error) from None

    def _put(self, path: str, data: bytes) -> None:
        """Write a whole object, replacing any (a single PUT is atomic on object stores)."""
        try:
            self._parent(path)
            self.fs.pipe_file(path, data)
        except Exception as error:
            raise self._fail("cannot write", path, error) from None

    def _write_payload(self, path: str, data: bytes) -> None:
        """On a disk, write aside and rename, so a reader never sees a file half rewritten."""
        if self._flat:
            self._put(path, data)
            return
        aside = f"{path}.{os.getpid()}-{os.urandom(4).hex()}.tmp"
        self._put(aside, data)
        try:
            self.fs.mv(aside, path)
        except Exception as error:
            self._rm([aside])
            raise self._fail("cannot write", path, error) from None

    def _create(self, path: str, data: bytes) -> bool:
        """Exclusive create: True if this call made the object, False if it existed."""
        for attempt in range(6):
            made = False
            try:
                self._parent(path)
                with self.fs.open(path, "xb") as handle:
                    made = True  # on a disk the file exists now, empty until written
                    handle.write(data)
                return True
            except FileExistsError:
                return False
            except Exception as error:
                if made and not self._flat:  # a full disk: leave no half-written manifest
                    self._rm([path])
                if _conflict(error) and attempt < 5:  # S3: concurrent conditional writes
                    time.sleep(0.05 * 2 ** attempt)
                    continue
                raise self._fail("cannot write", path, error) from None
        raise AssertionError  # unreachable

    def _rm(self, paths: list[str]) -> None:
        if not paths:
            return
        try:
            self.fs.rm(paths)
            return
        except FileNotFoundError:  # some went meanwhile: remove the others one by one
            pass
        except Exception as error:
            raise self._fail("cannot remove", paths[0], error) from None
        for path in paths:
            try:
                self.fs.rm_file(path)
            except FileNotFoundError:
                pass
            except Exception as error:
                raise self._fail("cannot remove", path, error) from None

    def _find(self, prefix: str) -> dict[str, dict[str, Any]]:
        try:
            found = self.fs.find(prefix, detail=True)
        except FileNotFoundError:
            return {}
        except Exception as error:
            raise self._fail("cannot list", prefix, error) from None
        return {self._strip(path): info for path, info in found.items()
                if info.get("type", "file") == "file"}

    def _parent(self, path: str) -> None:
        if not self._flat:
            self.fs.makedirs(path.rpartition("/")[0], exist_ok=True)

    def _touch(self, folder: str) -> None:
        """Record a use, at most hourly per entry; a read-only store is still readable."""
        now = time.time()
        if now - self._touched.get(folder, 0.0) < TOUCH_EVERY:
            return
        self._touched[folder] = now
        try:
            self._put(f"{folder}/{USED}", b"")
        except StoreError:
            pass

    def _drop_unreferenced(self, folder: str, ours: set[str]) -> None:
        """A losing writer's payload the winner does not share (identical bytes share a
        name). If the winner's manifest cannot be read, gc removes it later."""
        manifest = self._manifest(folder)
        if manifest is not None:
            self._rm([f"{folder}/{name}" for name in sorted(ours - _objects(manifest))])

    def _bucket(self) -> str | None:
        split = getattr(self.fs, "split_path", None)
        return split(self.root)[0] if callable(split) and self._flat else None

    def _strip(self, path: str) -> str:
        return self.fs._strip_protocol(path).rstrip("/")

    def _display(self, path: str) -> str:
        """A path inside the store as a URL without secrets."""
        return f"{self.url}{path[len(self.root):]}" if path.startswith(self.root) else path

    def _fail(self, doing: str, path: str, error: BaseException) -> StoreError:
        where = path[len(self.root) + 1:] if path.startswith(self.root + "/") else path
        return StoreError(f"cache {self.url}: {doing} {where}: {self._reason(error)}")

    def _reason(self, error: BaseException) -> str:
        return describe(error, self._secrets)


class ObjectLock:
    """An advisory lock object: exclusive create to take it, a heartbeat to keep it, delete to
    release it. Waiting polls with backoff; an expired one is taken over. Reentrant within a
    thread; other threads of the process wait on an in-process lock first."""

    def __init__(self, store: FsspecStore, path: str):
        self.store = store
        self.path = path
        self._mutex = threading.RLock()
        self._depth = 0
        self._token = ""
        self._delay = POLL[0]
        self._next_try = 0.0

    def acquire(self, timeout: float = -1) -> ObjectLock:
        deadline = None if timeout < 0 else time.monotonic() + timeout
        if not self._mutex.acquire(timeout=timeout if timeout >= 0 else -1):
            raise Timeout(self.path)
        if self._depth:
            self._depth += 1
            return self
        try:
            self._wait_and_take(deadline)
        except BaseException:
            self._mutex.release()
            raise
        self._depth = 1
        self.store._heartbeat.add(self)
        return self

    def release(self) -> None:
        if not self._depth:
            return
        self._depth -= 1
        if self._depth == 0:
            self.store._heartbeat.discard(self)
            try:  # ours unless taken over while our heartbeat stalled
                body = self.store._read_json(self.path)
                if body is None or body.get("token") == self._token:
                    self.store._rm([self.path])
            except StoreError:
                pass  # it expires by itself
        self._mutex.release()

    def __enter__(self) -> ObjectLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def refresh(self) -> None:
        body = self.store._read_json(self.path)
        if body is not None and body.get("token") != self._token:
            return  # taken over after our heartbeat stalled: nothing of ours to keep
        self.store._put(self.path, self._body())

    def _wait_and_take(self, deadline: float | None) -> None:
        """Try at once, then poll with backoff; the backoff carries over between calls, so a
        caller retrying with short timeouts does not poll faster."""
        while True:
            now = time.monotonic()
            if now >= self._next_try:
                if self._take():
                    self._delay, self._next_try = POLL[0], 0.0
                    return
                self._next_try = now + self._delay
                self._delay = min(self._delay * 1.5, POLL[1])
            if deadline is not None and now >= deadline:
                raise Timeout(self.path)
            until = self._next_try if deadline is None else min(self._next_try, deadline)
            time.sleep(max(0.0, until - now))

    def _take(self) -> bool:
        self._token = os.urandom(8).hex()
        if self.store._create(self.path, self._body()):
            return True
        body = self.store._read_json(self.path)
        if body is None:  # released meanwhile (or being written: then the create fails)
            return self.store._create(self.path, self._body())
        if _expires(body) >= time.time():
            return False
        self.store._rm([self.path])  # its holder died: take it over
        return self.store._create(self.path, self._body())

    def _body(self) -> bytes:
        return json.dumps({"token": self._token, "host": socket.gethostname(),
                           "pid": os.getpid(), "expires": time.time() + self.store.ttl}
                          ).encode()


class ObjectLease:
    """A live render's entries, in an object under ``ROOT/.leases/`` that a heartbeat keeps
    unexpired; registered and grown under the store's gc lock, like ``local.Lease``."""

    def __init__(self, store: FsspecStore, keys: set[tuple[str, str]]):
        self.store = store
        self.keys = set(keys)
        host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"
        self.name = f"{host}-{os.getpid()}-{os.urandom(6).hex()}"
        self.path = f"{store.root}/{LEASES}/{self.name}.json"
        self.created = time.time()
        self._live = False
        self._writing = threading.Lock()

    def __enter__(self) -> ObjectLease:
        with self.store.gc_lock():  # never while gc decides what to remove
            self.store._create(self.path, self._body())
            self._live = True
        self.store._heartbeat.add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._live:
            return
        self.store._heartbeat.discard(self)
        with self._writing:
            self._live = False
            try:
                self.store._rm([self.path])
            except StoreError:
                pass  # it expires by itself

    def add(self, kind: str, key: str) -> None:
        if (kind, key) in self.keys:
            return
        with self.store.gc_lock():  # a gc deciding now has its list; the entry comes after
            with self._writing:
                self.keys.add((kind, key))
            self.refresh()

    def refresh(self) -> None:
        with self._writing:
            if self._live:
                self.store._put(self.path, self._body())

    def __contains__(self, item: object) -> bool:
        return item in self.keys

    def _body(self) -> bytes:
        return json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "created": self.created, "expires": time.time() + self.store.ttl,
                           "entries": sorted(map(list, self.keys))}).encode()


class Heartbeat:
    """One daemon thread per store pushing the expiry of its live locks and leases forward
    every ``interval`` seconds; it ends when nothing is held and starts again on demand."""

    def __init__(self, interval: float):
        self.interval = interval
        self._items: set[ObjectLock | ObjectLease] = set()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, item: ObjectLock | ObjectLease) -> None:
        with self._guard:
            self._items.add(item)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="framepack-heartbeat",
                                                daemon=True)
                self._thread.start()

    def discard(self, item: ObjectLock | ObjectLease) -> None:
        with self._guard:
            self._items.discard(item)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            with self._guard:
                items = list(self._items)
                if not items:
                    self._thread = None
                    return
            for item in items:
                try:
                    item.refresh()
                except StoreError:
                    pass  # a blip: the next beat tries again well before expiry


def payload_name(name: str, digest: str) -> str:
    """``tensors.safetensors`` -> ``tensors.<sha256>.safetensors``."""
    stem, dot, suffix = name.partition(".")
    return f"{stem}.{digest}{dot}{suffix}"




def _rebuild(url: str, options: dict[str, Any], ttl: float) -> FsspecStore:
    return FsspecStore(url, options, ttl=ttl)






def _plain_name(name: str) -> str:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(name)
    return name


def _objects(manifest: dict[str, Any]) -> set[str]:
    """The object names a manifest references."""
    names = set()
    for name, meta in manifest.get("files", {}).items():
        names.add(str(meta.get("object", name)) if isinstance(meta, dict) else str(name))
    return names


def _lease_keys(body: dict[str, Any]) -> set[tuple[str, str]]:
    try:
        return {(str(kind), str(key)) for kind, key in body.get("entries", [])}
    except (TypeError, ValueError):
        return set()


def _expires(body: dict[str, Any]) -> float:
    try:
        return float(body.get("expires", 0))
    except (TypeError, ValueError):
        return 0.0


def _mtime(info: dict[str, Any]) -> float:
    """Modification time from a listing, whichever way the filesystem spells it."""
    for field in ("LastModified", "mtime", "last_modified", "updated", "created"):
        value = info.get(field)
        if value is None:
            continue
        if hasattr(value, "timestamp"):
            return float(value.timestamp())
        try:
            return float(value)
        except (TypeError, ValueError):
            continue
    return 0.0


def _conflict(error: BaseException) -> bool:
    """S3's 409 ConditionalRequestConflict, which s3fs raises as a plain OSError."""
    cause = error.__cause__ or error.__context__
    response = getattr(cause, "response", None) or getattr(error, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code == "ConditionalRequestConflict" or status == 409 or \
        "ConditionalRequestConflict" in str(error)
