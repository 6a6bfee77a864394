"""The limit on concurrent calls to the LLM (``llm.concurrency``), held across a whole Ray cluster.

Locally a review's thread pool is the limit. On Ray the calls come from workers on many nodes, so the
limit is a named actor every worker asks for a slot before it calls the model and gives the slot back
after (retries and back-off included, as a local worker thread holds its place). The actor is named
after the endpoint (base URL and model) and detached, so every driver and worker of the cluster that
calls that endpoint shares it; the limit in force is the last connecting driver's ``llm.concurrency``.

A slot is a lease its holder renews every few seconds; a worker that dies stops renewing, and its slot
is taken back after ``LEASE_S``, so a dead node does not lower the limit for good.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import uuid
from typing import Any

LEASE_S = 30.0  # a slot not renewed for this long belonged to a dead worker
RENEW_S = 5.0


class LLMSlots:
    """The async actor: at most ``limit`` leases out at once."""

    def __init__(self, limit: int):
        self.limit = limit
        self.leases: dict[str, float] = {}  # lease id -> when last renewed (monotonic)
        self.peak = 0
        self.granted = 0
        self._changed = asyncio.Condition()

    def _expire(self) -> None:
        now = time.monotonic()
        for lease, renewed in list(self.leases.items()):
            if now - renewed > LEASE_S:
                del self.leases[lease]

    async def acquire(self) -> str:
        async with self._changed:
            while True:
                self._expire()
                if len(self.leases) < self.limit:
                    lease = uuid.uuid4().hex
                    self.leases[lease] = time.monotonic()
                    self.granted += 1
                    self.peak = max(self.peak, len(self.leases))
                    return lease
                try:  # woken by a release, or after a while to take back expired leases
                    await asyncio.wait_for(self._changed.wait(), timeout=1.0)
                except TimeoutError:
                    pass

    async def release(self, lease: str) -> None:
        async with self._changed:
            self.leases.pop(lease, None)
            self._changed.notify_all()

    async def renew(self, leases: list[str]) -> None:
        now = time.monotonic()
        for lease in leases:
            if lease in self.leases:
                self.leases[lease] = now

    async def resize(self, limit: int) -> None:
        async with self._changed:
            self.limit = limit
            self._changed.notify_all()

    async def stats(self) -> dict[str, int]:
        return {"limit": self.limit, "held": len(self.leases), "peak": self.peak, "granted": self.granted}

    async def reset_peak(self) -> None:
        self.peak = len(self.leases)


def slots_name(base_url: str, model: str) -> str:
    return "llm-slots-" + hashlib.sha256(f"{base_url}\n{model}".encode()).hexdigest()[:16]


def connect_slots(base_url: str, model: str, limit: int, namespace: str, node_id: str):
    """The endpoint's slots actor (created on ``node_id``, the driver's, when it does not exist yet)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    actor = ray.remote(LLMSlots).options(
        name=slots_name(base_url, model), namespace=namespace, lifetime="detached", get_if_exists=True,
        num_cpus=0, max_restarts=-1, max_concurrency=1000,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=True),
    ).remote(limit)
    ray.get(actor.resize.remote(limit))
    return actor


class SlotGatedReasoner:
    """A reasoner whose every ``answer`` holds one of the cluster's LLM slots while it runs."""

    def __init__(self, inner: Any, slots: Any):
        self.inner, self.slots = inner, slots
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._renewer: threading.Thread | None = None

    def __getattr__(self, name: str) -> Any:  # notice, and whatever else callers read of the reasoner
        return getattr(self.inner, name)

    def answer(self, *args: Any, **kwargs: Any):
        import ray

        lease = ray.get(self.slots.acquire.remote())
        with self._lock:
            self._held.add(lease)
            if self._renewer is None:
                self._renewer = threading.Thread(target=self._renew, name="llm-slot-renewer", daemon=True)
                self._renewer.start()
        try:
            return self.inner.answer(*args, **kwargs)
        finally:
            with self._lock:
                self._held.discard(lease)
            self.slots.release.remote(lease)

    def _renew(self) -> None:
        while True:
            time.sleep(RENEW_S)
            with self._lock:
                held = list(self._held)
            if held:
                try:
                    self.slots.renew.remote(held)
                except Exception:  # the actor restarting: the next round renews
                    pass
