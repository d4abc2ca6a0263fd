"""Outputs on object storage (``--output-root s3://bucket/renders``).

An output is written under the shot's staging folder on this machine exactly as it is written
beside a shot, then uploaded. Object stores show an object only once its upload completes, so
a video is never seen half written; the sidecar is the commit point: it is removed before the
upload and put back last, so the up-to-date check (fingerprint in the sidecar, output present)
never trusts a half-replaced output. A frames folder is many objects: its frames go up, frames
of an older, longer render are removed, then ``render.json``. The staged copy is removed once
uploaded.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Iterable

from ..shot.model import Destination
from ..store.fsspec_store import FLAT  # filesystems without folders or rename
from ..store.protocol import StoreError, StoreUnavailable
from ..urls import describe, secrets_of


def publish(destination: Destination | None, path: Path, sidecar: Path) -> None:
    """Upload a staged output and its sidecar (no-op for outputs written in place)."""
    if destination is not None:
        RemoteOutputs.of(destination).publish(path, sidecar)


def check(destinations: Iterable[Destination | None]) -> None:
    """Fail now, before anything renders, when an output root cannot be used."""
    for destination in {d.url: d for d in destinations if d is not None}.values():
        RemoteOutputs.of(destination).check()


def current(destination: Destination | None, path: Path, sidecar: Path, expected: str) -> bool:
    """The output exists and its sidecar records ``expected``: on disk, or at the URL."""
    if destination is not None:
        return RemoteOutputs.of(destination).current(path, sidecar, expected)
    try:
        recorded = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(recorded, dict) and path.exists() and \
        recorded.get("fingerprint") == expected


class RemoteOutputs:
    """The output root URL of one destination; one filesystem per process."""

    def __init__(self, destination: Destination):
        import fsspec

        self.destination = destination
        self._secrets = secrets_of(destination.url, dict(destination.storage_options))
        try:
            self.fs, root = fsspec.core.url_to_fs(
                destination.url, **{"use_listings_cache": False, **destination.storage_options})
        except Exception as error:  # unknown protocol, its package missing, bad options
            raise StoreUnavailable(f"output root {destination.shown}: "
                                   f"{describe(error, self._secrets)}") from None
        self.root = root.rstrip("/")
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (
            self.fs.protocol,)
        self._flat = bool(FLAT & set(protocols))

    @classmethod
    def of(cls, destination: Destination) -> RemoteOutputs:
        key = (destination.url, destination.staging,
               json.dumps(destination.storage_options, sort_keys=True, default=str))
        if key not in _OPEN:
            _OPEN[key] = cls(destination)
        return _OPEN[key]

    def check(self) -> None:
        try:
            self.fs.ls(self.root, detail=False)
        except FileNotFoundError:  # nothing written there yet, or no bucket to hold it
            split = getattr(self.fs, "split_path", None)
            bucket = split(self.root)[0] if callable(split) and self._flat else None
            if bucket is not None and not self.fs.exists(bucket):
                raise StoreUnavailable(f"output root {self.destination.shown}: bucket "
                                       f"{bucket!r} does not exist") from None
        except Exception as error:
            raise StoreUnavailable(f"output root {self.destination.shown}: cannot reach the "
                                   f"store: {describe(error, self._secrets)}") from None

    def remote(self, path: Path) -> str:
        return f"{self.root}/{Path(path).relative_to(self.destination.staging).as_posix()}"

    # ------------------------------------------------------------ commit

    def publish(self, path: Path, sidecar: Path) -> None:
        remote_sidecar = self.remote(sidecar)
        self._remove([remote_sidecar])  # uncommitted until the new sidecar lands
        if path.is_dir():
            self._publish_folder(path, sidecar)
        else:
            self._upload(path, self.remote(path))
        self._upload(sidecar, remote_sidecar)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)

    def _publish_folder(self, folder: Path, sidecar: Path) -> None:
        remote = self.remote(folder)
        names = sorted(p.name for p in folder.iterdir() if p.is_file() and p != sidecar)
        for name in names:
            self._upload(folder / name, f"{remote}/{name}")
        keep = {f"{remote}/{name}" for name in names} | {self.remote(sidecar)}
        self._remove(sorted(set(self._listing(remote)) - keep))

    def current(self, path: Path, sidecar: Path, expected: str) -> bool:
        data = self._read(self.remote(sidecar))
        try:
            recorded = json.loads(data) if data is not None else None
        except ValueError:
            return False
        if not isinstance(recorded, dict) or recorded.get("fingerprint") != expected:
            return False
        return self._exists(self.remote(path))

    # ------------------------------------------------------------ filesystem

    def _upload(self, local: Path, remote: str) -> None:
        try:
            if self._flat:
                self.fs.put_file(str(local), remote)
                return
            self.fs.makedirs(remote.rpartition("/")[0], exist_ok=True)
            aside = f"{remote}.{os.getpid()}-{os.urandom(4).hex()}.tmp"
            self.fs.put_file(str(local), aside)
            self.fs.mv(aside, remote)
        except Exception as error:
            raise self._fail("cannot write", remote, error) from None

    def _read(self, remote: str) -> bytes | None:
        try:
            return self.fs.cat_file(remote)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except Exception as error:
            raise self._fail("cannot read", remote, error) from None

    def _exists(self, remote: str) -> bool:
        try:
            return bool(self.fs.exists(remote))
        except Exception as error:
            raise self._fail("cannot read", remote, error) from None

    def _listing(self, remote: str) -> list[str]:
        try:
            found = self.fs.find(remote)
        except FileNotFoundError:
            return []
        except Exception as error:
            raise self._fail("cannot list", remote, error) from None
        return [self.fs._strip_protocol(p) for p in found]

    def _remove(self, remotes: list[str]) -> None:
        for remote in remotes:
            try:
                self.fs.rm_file(remote)
            except FileNotFoundError:
                pass
            except Exception as error:
                raise self._fail("cannot remove", remote, error) from None

    def _fail(self, doing: str, remote: str, error: BaseException) -> StoreError:
        where = remote[len(self.root) + 1:] if remote.startswith(self.root + "/") else remote
        return StoreError(f"output root {self.destination.shown}: {doing} {where}: "
                          f"{describe(error, self._secrets)}")


_OPEN: dict[tuple[str, Path, str], RemoteOutputs] = {}
