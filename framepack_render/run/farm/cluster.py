"""Ray clusters: the --farm address forms, connecting to a cluster, and the private local one
that `--farm local:N` and the tests start. Ray is imported only here and only when asked."""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
from dataclasses import dataclass
from typing import Any


PROBE_SECONDS = 5.0  # Ray retries an unreachable address for minutes: try the port first
LOCAL_OBJECT_STORE = 150 * 1024 * 1024  # shots and results are small; Ray's default is 30% of RAM
INSTALL_HINT = "pip install 'framepack-render[farm]'"
ADDRESS_FORMS = "auto, ray://HOST:PORT, HOST:PORT or local:N"


class FarmError(Exception):
    """The farm cannot start (bad address, Ray missing, cluster unreachable): one line, exit 2."""


# ---------------------------------------------------------------- addresses and clusters


@dataclass(frozen=True)
class Address:
    kind: str  # "auto" | "client" (ray://) | "cluster" (HOST:PORT) | "local"
    text: str
    host: str = ""
    port: int = 0
    workers: int = 0  # local:N


_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})")


def parse_address(text: str) -> Address:
    """``auto``, ``ray://HOST:PORT``, ``HOST:PORT`` or ``local:N``; FarmError otherwise."""
    if text == "auto":
        return Address("auto", text)
    if match := re.fullmatch(r"local:(\d+)", text):
        workers = int(match[1])
        if not 1 <= workers <= 256:
            raise FarmError(f"--farm {text}: local:N takes 1 to 256 workers")
        return Address("local", text, workers=workers)
    client = text.startswith("ray://")
    kind, rest = ("client", text[len("ray://"):]) if client else ("cluster", text)
    match = _HOST_PORT.fullmatch(rest)
    if match is None or not 0 < int(match[2]) < 65536:
        raise FarmError(f"--farm {text!r} is not a cluster address; write {ADDRESS_FORMS}")
    return Address(kind, text, host=match[1].strip("[]"), port=int(match[2]))


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise FarmError(f"--farm needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def _probe(address: Address) -> None:
    """Fail in seconds, in one line, where Ray would retry an unreachable address for minutes."""
    try:
        socket.create_connection((address.host, address.port), timeout=PROBE_SECONDS).close()
    except OSError as error:
        raise FarmError(f"--farm {address.text}: cannot reach the cluster "
                        f"({error.strerror or error})") from None


def _loopback_only() -> None:
    """Make a cluster started from this process use 127.0.0.1 for every address and listening
    socket (Ray's rule for machines it does not cluster): a local farm is not reachable from
    the network. The environment variable reaches Ray's own processes; the constant covers a
    Ray module that was imported before this was called."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if "ray._private.ray_constants" in sys.modules:
        sys.modules["ray._private.ray_constants"].ENABLE_RAY_CLUSTER = False


def start_local_cluster(num_cpus: int, num_gpus: int | None = None,
                        object_store_memory: int = LOCAL_OBJECT_STORE) -> None:
    """A private Ray cluster in this process: listening on 127.0.0.1 only, no dashboard.
    ``num_gpus`` may exceed the real count (Ray then hands out GPU slots without devices:
    GPU placement becomes testable anywhere). Stopped with ``ray.shutdown()``."""
    _loopback_only()
    ray = import_ray()
    ray.init(address="local", num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
             object_store_memory=object_store_memory, logging_level=logging.ERROR,
             log_to_driver=False)
    node = ray.util.get_node_ip_address()
    if node != "127.0.0.1":
        ray.shutdown()
        raise FarmError(f"the local Ray cluster would listen on {node}, not 127.0.0.1; "
                        "not starting it")


def connect(address: Address) -> bool:
    """Connect this process to the farm's cluster; True when it started (and so owns) it."""
    if address.kind == "local":
        try:
            start_local_cluster(address.workers * local_threads(address.workers))
        except FarmError:
            raise
        except Exception as error:  # Ray's start-up failures: a port, /tmp, shared memory
            raise FarmError(f"--farm {address.text}: could not start a local Ray cluster: "
                            f"{first_line(error)}") from None
        return True
    ray = import_ray()
    target = address.text
    if address.kind == "auto" and ray.is_initialized():  # embedded in a connected driver
        return False
    if address.kind == "auto":  # RAY_ADDRESS (set inside `ray job submit` jobs) or this host's
        try:
            inner = parse_address(os.environ.get("RAY_ADDRESS", "auto"))
        except FarmError:  # a form Ray knows and we do not: let Ray judge it
            inner = address
        if inner.kind in ("client", "cluster"):
            _probe(inner)
    else:
        _probe(address)
    try:
        ray.init(address=target, logging_level=logging.ERROR, log_to_driver=False)
    except Exception as error:  # ConnectionError (no cluster), a client/version mismatch
        raise FarmError(f"--farm {address.text}: cannot connect: {first_line(error)}") from None
    return False


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def local_threads(workers: int) -> int:
    """CPU cores for each of local:N's workers: an equal share of this machine."""
    return max(1, (os.cpu_count() or workers) // workers)


def worker_shape(local_workers: int | None = None) -> tuple[int, dict[str, Any]]:
    """How many workers the connected cluster takes and what each asks Ray for: one per GPU
    (``num_gpus=1``); without GPUs, local:N makes N with an equal share of the cores each, and
    a cluster one per node with the smallest node's cores. Ray sets each worker's
    OMP_NUM_THREADS to its ``num_cpus``, which is how many threads torch then uses."""
    import ray

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if local_workers is not None:
        if gpus >= local_workers:
            return local_workers, {"num_gpus": 1}
        return local_workers, {"num_cpus": max(1, int(resources.get("CPU", 1)) // local_workers)}
    if gpus:
        return gpus, {"num_gpus": 1}
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    cores = min((int(node["Resources"].get("CPU", 1)) for node in nodes), default=1)
    return max(len(nodes), 1), {"num_cpus": max(cores, 1), "scheduling_strategy": "SPREAD"}
