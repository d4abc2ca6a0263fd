"""Engines: a planner (shot to tasks with keys, no torch) plus the code that runs its tasks."""
