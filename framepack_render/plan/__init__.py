"""The plan layer: a checked shot compiled into edits and windows with cache keys. No torch."""

from .graph import EditNode, Plan, WindowNode, build_plan, generation_order, mark_cached

__all__ = ["EditNode", "Plan", "WindowNode", "build_plan", "generation_order", "mark_cached"]
