"""The content-addressed cache shared by the planner (lookups) and the renderer (entries)."""

from __future__ import annotations

import os
from typing import Any

from .local import ENV_VAR, Lease, LocalStore, default_cache_dir
from ..urls import is_url
from .protocol import Entry, InUse, Store, StoreError, StoreLease, StoreUnavailable

__all__ = ["Entry", "InUse", "Lease", "LocalStore", "Store", "StoreError", "StoreLease",
           "StoreUnavailable", "default_cache_dir", "open_store"]


def open_store(location: str | os.PathLike[str] | None = None,
               storage_options: dict[str, Any] | None = None) -> Store:
    """The store at a path or fsspec URL (None: ``$FRAMEPACK_CACHE``, else the user cache
    folder). Paths, and file:// URLs without options, are a ``LocalStore`` (OS locks); any
    other URL is an ``FsspecStore``, checked now so a bad one fails before any work."""
    if location is None:
        location = os.environ.get(ENV_VAR) or None
    elif not os.fspath(location).strip():
        raise StoreUnavailable("cache '': give a folder or a URL (s3://bucket/prefix, gs://...)")
    if location is None or not is_url(location):
        if storage_options:
            raise StoreUnavailable(f"cache {location or default_cache_dir()}: storage options "
                                   "apply to a URL cache (s3://bucket/prefix, gs://, az://...)")
        store = LocalStore(location)
        if store.root.exists() and not store.root.is_dir():
            raise StoreUnavailable(f"cache {store.root}: not a folder; give a folder (it is "
                                   "made if missing) or a URL")
        return store
    url = os.fspath(location)
    if url.startswith(("file://", "local://")) and not storage_options:
        return LocalStore(url.partition("://")[2])
    from .fsspec_store import FsspecStore

    store = FsspecStore(url, storage_options)
    store.check()
    return store
