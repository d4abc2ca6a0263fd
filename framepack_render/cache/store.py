"""The content-addressed cache on disk: one folder per entry, committed atomically.

Layout: ``ROOT/KIND/KEY[:2]/KEY/`` holding the entry's files and ``manifest.json`` with each
file's size and SHA-256. An entry is written in a temporary folder beside its final place and
renamed into it, so readers see a whole entry or none; ``verify`` re-hashes the files. Reading
an entry touches its manifest, whose mtime is the entry's last use (``cache gc --older-than``).

Several processes (and machines sharing the folder) may use one cache: ``lock(kind, key)`` is an
OS file lock per entry under ``ROOT/.locks/``, held while an entry is made, so no two processes
make the same entry; the OS releases it when a process dies, even by kill -9.
Pure Python: the planner asks it what is cached without loading any model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from filelock import FileLock

MANIFEST = "manifest.json"
ENV_VAR = "FRAMEPACK_CACHE"
LOCKS = ".locks"
STALE_SECONDS = 3600  # a temporary folder this old belongs to a process that died


@dataclass(frozen=True)
class Entry:
    kind: str
    key: str
    path: Path
    size: int  # bytes, manifest included
    used: float  # last use (the manifest's mtime), seconds since the epoch


def default_cache_dir() -> Path:
    """``$FRAMEPACK_CACHE``, else the platform's user cache folder."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("framepack-render", appauthor=False))


class CacheStore:
    def __init__(self, root: str | os.PathLike[str] | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    def entry_dir(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / key

    def has(self, kind: str, key: str) -> bool:
        """Committed (a manifest exists). Cheap: for plans; readers call ``verify``."""
        return (self.entry_dir(kind, key) / MANIFEST).is_file()

    def put(self, kind: str, key: str, files: dict[str, bytes], *, replace: bool = False
            ) -> Path:
        """Write an entry atomically. A concurrent writer of the same key wins harmlessly;
        ``replace`` first removes an existing entry (one that failed verification)."""
        final = self.entry_dir(kind, key)
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
                if not self.has(kind, key):  # not someone else's identical entry: a real error
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return final

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
        """Temporary folders of writers that died (kill -9, power loss) and idle lock files."""
        if not self.root.is_dir():
            return []
        cutoff = time.time() - older_than
        found = []
        candidates = [*self.root.glob("*/*/.*"), *(self.root / LOCKS).glob("*/*/*.lock")]
        for path in candidates:
            try:
                if path.stat().st_mtime < cutoff:
                    found.append(path)
            except OSError:  # removed while we looked
                continue
        return found

    def remove(self, path: Path) -> None:
        """Remove a leftover: a dead writer's temporary folder, or an idle lock file."""
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            lock = FileLock(path)
            try:  # never pull a lock file from under a process holding it
                lock.acquire(timeout=0)
            except Exception:
                return
            try:
                path.unlink(missing_ok=True)
            finally:
                lock.release()

    def clear(self) -> None:
        """Remove everything; entries first, so a reader never sees a half-removed entry."""
        for entry in list(self.entries()):
            self.discard(entry.kind, entry.key)
        if self.root.is_dir():
            for child in self.root.iterdir():
                if child.is_dir():
                    shutil.rmtree(child, ignore_errors=True)
