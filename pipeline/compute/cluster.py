"""The Ray cluster a command runs on: joined (``compute.address``) or started privately, then left.

A driver that is already connected (a test, a notebook, a bench that called ``ray.init`` itself) is
used as it is and left connected. Ray's worker output is kept off the driver's stdout, which carries
``--json``.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pipeline.settings import RAY_NOT_INSTALLED as NOT_INSTALLED
from pipeline.settings import ComputeSettings, ConfigError, DocketSettings

log = logging.getLogger(__name__)


class ComputeError(ConfigError):
    """The cluster cannot be used as configured; ``str()`` is one line saying what to do (a ConfigError, so
    the CLI prints it as one line and exits 2)."""


@dataclass(frozen=True)
class ClusterInfo:
    nodes: tuple[str, ...]  # ids of the alive nodes
    node_ips: tuple[str, ...]  # their addresses, in the same order
    cpus: float  # logical CPUs of the whole cluster
    driver_ip: str
    driver_node: str


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ComputeError(NOT_INSTALLED) from exc
    return ray


def private_token() -> None:
    """A private local Ray gets a token of its own, for this process only. Left to itself Ray 2.60 makes one
    and writes it to ~/.ray/auth_token, where every later `ray start` on the host would pick it up. Ray
    reads these when it is first imported; a token already in the environment is kept."""
    if "ray" not in sys.modules and not os.environ.get("RAY_AUTH_TOKEN"):
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)


@contextmanager
def ray_cluster(compute: ComputeSettings) -> Iterator[ClusterInfo]:
    """Connected to the cluster for the block; the private one started here is stopped after it."""
    if compute.address is None:
        private_token()
    ray = import_ray()
    connected_here = False
    if not ray.is_initialized():
        common: dict[str, Any] = dict(
            namespace=compute.namespace, log_to_driver=False, logging_level=logging.WARNING,
        )
        try:
            if compute.address is None:
                memory = compute.object_store_mb * 1024 * 1024 if compute.object_store_mb else None
                ray.init(address="local", include_dashboard=False, object_store_memory=memory, **common)
            else:
                ray.init(address=compute.address, **common)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, AuthenticationError, ...
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            if "auth" in f"{type(exc).__name__} {exc}".lower():
                hint = "the cluster wants its token: set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN (docs/scale.md)"
            else:
                hint = "start it with `ray start --head` (docs/scale.md), or unset compute.address for a private local Ray"
            raise ComputeError(f"compute.address {compute.address}: cannot join the Ray cluster ({first}); {hint}") from exc
        connected_here = True
    try:
        yield cluster_info(ray)
    finally:
        if connected_here:
            ray.shutdown()


def cluster_info(ray) -> ClusterInfo:
    alive = [n for n in ray.nodes() if n.get("Alive")]
    context = ray.get_runtime_context()
    return ClusterInfo(
        nodes=tuple(n["NodeID"] for n in alive),
        node_ips=tuple(n["NodeManagerAddress"] for n in alive),
        cpus=sum(float(n.get("Resources", {}).get("CPU", 0)) for n in alive),
        driver_ip=ray.util.get_node_ip_address(),
        driver_node=context.get_node_id(),
    )


def actor_count(compute: ComputeSettings, cluster: ClusterInfo) -> int:
    """Actors to start: as set, else one per node that can run one (has CPUs)."""
    return compute.actors or max(1, len(cluster.nodes))


def in_flight(compute: ComputeSettings, cluster: ClusterInfo, at_least: int = 1) -> int:
    """Items submitted and not yet recorded: as set, else 4 per CPU (enough to keep every CPU busy while
    the driver records, few enough that results do not pile up in the object store)."""
    return compute.max_in_flight or max(at_least, int(4 * max(cluster.cpus, 1)))


def check_shared_databases(settings: DocketSettings, cluster: ClusterInfo) -> None:
    """Workers that read the registry (review cells, questions) must reach the same database as the
    driver: a SQLite file in the workspace is only the same file on the driver's own host."""
    others = sorted({ip for ip in cluster.node_ips if ip != cluster.driver_ip})
    if not others:
        return
    for name, url in (("registry_url", settings.resolved_registry_url), ("audit_url", settings.resolved_audit_url)):
        if url.startswith("sqlite"):
            raise ComputeError(
                f"{name} is a SQLite file on this host, which the cluster's other hosts ({', '.join(others)}) "
                "cannot share; put the registry and the audit log in PostgreSQL (configs/postgres.yaml, "
                "docs/scale.md) to run on several hosts"
            )


def retry_note(error: BaseException) -> str:
    """A Ray failure in a few words, for a one-line error (a node's death carries pages of detail)."""
    first = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {first[:160]}" if first else type(error).__name__
