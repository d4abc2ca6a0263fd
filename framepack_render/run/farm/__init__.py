"""Render farms on Ray: `framepack render --farm ADDRESS` and `framepack watch --farm ADDRESS`.

Workers are Ray actors, one per GPU (``num_gpus=1``; Ray sets each one's CUDA_VISIBLE_DEVICES),
or on a cluster without GPUs one per node (local:N: N, sharing the cores). Each holds a resident
``Session``, so its models load once and stay loaded for every shot it renders. A shot is one
actor call: its chain of windows runs on one worker (each window reads the ones generated
before it), and independent shots run in parallel on different workers. The driver keeps a
plain dispatch loop over ``ray.wait``: an idle worker takes a shot of the model it already holds
when there is one.

Faults: workers restart for ever (``max_restarts=-1``) and a call cut short by a worker's death
runs again on its restarted worker (``max_task_retries``). The cache commits every window as
soon as it is sampled and its writes are idempotent, so the retry resumes from the cache and a
kill costs at most the window in flight. Nothing is held by the driver: if it dies, its workers
die with it, the cache stays consistent and running the command again resumes.

Progress travels from the workers to the driver through a small hub actor (fire-and-forget
pushes, drained by the driver between waits) and is drawn by one Rich display for the farm.

The rooms: ``cluster`` (addresses, connecting, the private local cluster), ``worker`` (the actor
and its progress), ``driver`` (``Farm``: dispatch, retries, draining progress), ``progress`` (the
Rich display), ``commands`` (`render --farm`, `watch --farm`). Ray is imported only here, and
only when ``--farm`` is given; `validate` and `plan` never load it.
"""

from .cluster import FarmError, start_local_cluster
from .commands import farm_renders, render_on_farm
from .driver import Farm, FarmObserver
from .worker import Event, Outcome

__all__ = ["Event", "Farm", "FarmError", "FarmObserver", "Outcome", "farm_renders",
           "render_on_farm", "start_local_cluster"]
