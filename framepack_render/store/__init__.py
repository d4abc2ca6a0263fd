"""The content-addressed cache shared by the planner (lookups) and the renderer (entries)."""

from .local import LocalStore, Lease, default_cache_dir

__all__ = ["LocalStore", "Lease", "default_cache_dir"]
