"""The content-addressed cache on disk: one folder per entry, committed atomically.

Layout: ``ROOT/KIND/KEY[:2]/KEY/`` holding the entry's files and ``manifest.json`` with each
file's size and SHA-256. An entry is written in a temporary folder beside its final place and
renamed into it, so readers see a whole entry or none; ``verify`` re-hashes the files.
Pure Python: the planner asks it what is cached without loading any model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

MANIFEST = "manifest.json"
ENV_VAR = "FRAMEPACK_CACHE"


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
