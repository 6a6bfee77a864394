"""Actors that hold a Docket on a Ray node and do its per-item work: evaluate review cells, answer
questions. They read the registry (the shared database) and their node's derived indexes, and never
record: each returns its finding or answer record, and the driver appends it to the audit log, so an
item Ray runs twice (its worker died) is still recorded once.
"""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from pipeline.app import Docket
from pipeline.settings import DocketSettings


class DocketWorker:
    def __init__(self, settings: DocketSettings, slots: Any | None):
        from pipeline.compute.llm_slots import SlotGatedReasoner

        _check_registry_reachable(settings)
        self.docket = Docket(settings)
        if slots is not None:  # every call to the LLM holds one of the cluster's slots
            self.docket.reasoner = SlotGatedReasoner(self.docket.reasoner, slots)
        # Built once here, before the actor takes concurrent calls (the review runner's _warm_up, locally).
        _ = self.docket.reasoner
        self.docket.store.vectors()
        self.docket.store.lexical()

    def evaluate_cell(self, review, item, doc) -> dict[str, Any]:
        from pipeline.review.runner import evaluate_cell

        return evaluate_cell(self.docket, review, item, doc)

    def ask(self, question: str, options) -> Any:
        from pipeline.ask import ask

        options.record = False  # the driver records
        return ask(self.docket, question, options)

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()


def _check_registry_reachable(settings: DocketSettings) -> None:
    """A SQLite registry the worker's host does not have would be created empty here: refuse instead."""
    from pathlib import Path

    url = settings.resolved_registry_url
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise RuntimeError(
                f"registry_url {url}: no such file on this Ray node; on several hosts the registry must be in "
                "PostgreSQL (docs/scale.md)"
            )


@lru_cache(maxsize=1)
def remote_worker():
    import ray

    return SimpleNamespace(DocketWorker=ray.remote(DocketWorker))


def start_workers(settings: DocketSettings, count: int, concurrency: int, slots: Any | None, retries: int) -> list:
    """``count`` workers spread over the nodes, each taking ``concurrency`` items at once."""
    worker = remote_worker().DocketWorker.options(
        max_restarts=-1, max_task_retries=retries, max_concurrency=concurrency, scheduling_strategy="SPREAD",
    )
    return [worker.remote(settings, slots) for _ in range(count)]


def record_snapshots_first(docket: Docket) -> None:
    """Append, from the driver, the settings and corpus entries every answer of the run will name
    (``ask`` appends them when the log lacks them): the workers then find them, and write nothing to the
    audit log, whose signing key stays on the driver's host."""
    from pipeline.replay.snapshots import commit_snapshots, corpus_snapshot

    s = docket.settings
    commit_snapshots(docket.audit, s.actor, s, corpus_snapshot(docket.store))
