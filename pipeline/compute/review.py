"""Review cells on Ray: ``pipeline.review.runner``'s cell executor for ``compute.engine: ray``.

Each cell is a call to a ``DocketWorker`` actor, which asks and judges it there (``evaluate_cell``, the
local code) and returns the finding. The runner records every finding on the driver, as locally: one
``review_finding`` entry each, appended to the shared audit log (whose head lock keeps seqs contiguous
whoever else appends), then the state row, so resuming after a crash works as it does locally. A cell
whose worker died is evaluated again; only its one finding is recorded. Calls to the LLM hold one of
the cluster's slots (``llm_slots``), so ``llm.concurrency`` bounds them across every node. The settings
and corpus entries the findings name are the driver's too (``pipeline.compute.snapshots``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pipeline.app import Docket
from pipeline.compute.cluster import (
    ComputeError, actor_count, check_shared_databases, import_ray, in_flight, ray_cluster,
)
from pipeline.compute.fanout import fan_out
from pipeline.compute.snapshots import DriverSnapshots, write_first
from pipeline.compute.workers import start_workers
from pipeline.review.checklist import ChecklistItem
from pipeline.review.runner import cell_failure
from pipeline.review.state import Review, ReviewDocument


def evaluate_on_ray(docket: Docket, review: Review, cells: list[tuple[ChecklistItem, ReviewDocument]],
                    workers: int, record: Callable[[dict[str, Any]], None]) -> None:
    """The Ray ``CellExecutor``: ``workers`` is what the local engine would run at once (``llm.concurrency``
    for the model, 1 for the extractive answerer), taken by each actor; the LLM slots bound the total."""
    if not cells:
        return
    ray = import_ray()  # without Ray installed: one line saying how to install it
    s = docket.settings
    with ray_cluster(s.compute) as cluster:
        check_shared_databases(s, cluster)
        slots = llm_slots(docket, cluster.driver_node)
        written = write_first(docket)
        snapshots = DriverSnapshots(docket, written)
        actors = start_workers(s, actor_count(s.compute, cluster), workers, slots, s.compute.task_retries, written)
        try:
            ready(actors)
            # What a cell needs of the review (its id, collection, reasoner), sent once, not with every cell.
            review_ref = ray.put(replace(review, cells={}, documents=[]))

            def give_up(cell: tuple[ChecklistItem, ReviewDocument], why: str) -> None:
                item, doc = cell
                record(cell_failure(review, item, doc, f"{doc.name}: not evaluated, {why}; run the same review again"))

            fan_out(
                actors, cells,
                submit=lambda actor, cell: actor.evaluate_cell.remote(review_ref, *cell),
                on_result=lambda cell, result: (snapshots.before(result.snapshots), record(result.value)),
                on_give_up=give_up,
                window=in_flight(s.compute, cluster, at_least=len(actors) * workers),
                retries=s.compute.task_retries,
            )
        finally:
            for actor in actors:
                ray.kill(actor)


def llm_slots(docket: Docket, driver_node: str):
    """The cluster's LLM slots for this endpoint, or None when no LLM is called (the extractive answerer)."""
    s = docket.settings
    if s.reasoner != "magistral":
        return None
    from pipeline.compute.llm_slots import connect_slots

    return connect_slots(s.llm.resolved_base_url(), s.llm.model, s.llm.concurrency, s.compute.namespace, driver_node)


def ready(actors: list) -> None:
    """Wait for the actors to open their Docket; one that cannot (no registry, no model) says why, once."""
    import ray
    from ray.exceptions import RayError

    try:
        ray.get([actor.node.remote() for actor in actors])
    except RayError as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise ComputeError(f"a Ray worker could not open the workspace: {lines[-1] if lines else exc}") from exc
