"""The content-addressed cache shared by the planner (lookups) and the renderer (entries)."""

from .store import CacheStore, Lease, default_cache_dir

__all__ = ["CacheStore", "Lease", "default_cache_dir"]
