"""Actors that hold a Docket on a Ray node and do its per-item work: evaluate review cells, answer
questions. They read the registry (the shared database) and their node's derived indexes, and never
record: each returns its finding or answer record, and the driver appends it to the audit log, so an
item Ray runs twice (its worker died) is still recorded once. A worker's Docket has no audit log: the
settings and corpus entries ``ask`` would append go back to the driver with the result
(``pipeline.compute.snapshots``).
"""

from __future__ import annotations

from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from pipeline.app import Docket
from pipeline.settings import DocketSettings


class DocketWorker:
    def __init__(self, settings: DocketSettings, slots: Any | None, snapshots_written: frozenset[str]):
        from pipeline.compute.llm_slots import SlotGatedReasoner
        from pipeline.compute.snapshots import SnapshotLog

        _check_registry_reachable(settings)
        self.docket = Docket(settings)
        self.snapshots = SnapshotLog(snapshots_written)
        self.docket.audit = self.snapshots  # what `ask` would append is kept for the driver, never written here
        if slots is not None:  # every call to the LLM holds one of the cluster's slots
            self.docket.reasoner = SlotGatedReasoner(self.docket.reasoner, slots)
        # Built once here, before the actor takes concurrent calls (the review runner's _warm_up, locally).
        _ = self.docket.reasoner
        self.docket.store.vectors()
        self.docket.store.lexical()

    def evaluate_cell(self, review, item, doc):
        """The cell's finding (a ``WorkerResult``)."""
        from pipeline.review.runner import evaluate_cell

        finding = evaluate_cell(self.docket, review, item, doc)
        return self.snapshots.result(finding, finding.answer_record)

    def ask(self, question: str, options):
        """The question's answer record, not recorded (a ``WorkerResult``)."""
        from pipeline.ask import ask

        options.record = False  # the driver records
        record = ask(self.docket, question, options)
        return self.snapshots.result(record, {"settings_sha256": record.settings_sha256, "corpus": record.corpus})

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


def start_workers(settings: DocketSettings, count: int, concurrency: int, slots: Any | None, retries: int,
                  snapshots_written: frozenset[str] = frozenset()) -> list:
    """``count`` workers spread over the nodes, each taking ``concurrency`` items at once. ``snapshots_written``:
    the settings and corpus entries the driver has appended (``pipeline.compute.snapshots.write_first``)."""
    worker = remote_worker().DocketWorker.options(
        max_restarts=-1, max_task_retries=retries, max_concurrency=concurrency, scheduling_strategy="SPREAD",
    )
    return [worker.remote(settings, slots, snapshots_written) for _ in range(count)]
