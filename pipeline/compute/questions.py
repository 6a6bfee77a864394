"""Many questions at once (``docket ask --questions FILE``), locally or on Ray: one audit entry each.

Every question is answered by ``pipeline.ask.ask`` (locally on a thread pool as wide as a review's, on
Ray by ``DocketWorker`` actors) without recording, and recorded here, on the driver, as the ``answer``
entry ``ask`` itself would append: a question Ray answers twice (its worker died) is logged once.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date

from pipeline.app import Docket
from pipeline.ask import AskOptions, ask
from pipeline.compute.questions_file import Question
from pipeline.records import AnswerRecord


@dataclass
class BatchDefaults:
    """What the command line says for every question; a question's own collection and doc come first."""

    collection: str | None = None  # None: every collection, as `docket ask` without -c
    documents: list[str] = field(default_factory=list)
    doc_types: list[str] = field(default_factory=list)
    since: date | None = None
    until: date | None = None
    top_k: int | None = None
    allow_ungrounded: bool | None = None


def ask_options(question: Question, defaults: BatchDefaults) -> AskOptions:
    collection = question.collection or defaults.collection
    return AskOptions(
        collection=collection, every_collection=collection is None,
        documents=list(question.documents or defaults.documents), doc_types=list(defaults.doc_types),
        since=defaults.since, until=defaults.until, top_k=defaults.top_k,
        allow_ungrounded=defaults.allow_ungrounded, record=False,
    )


def record_answer(docket: Docket, record: AnswerRecord) -> AnswerRecord:
    """The ``answer`` entry of one question, as ``ask`` appends it when it records."""
    appended = docket.audit.append(
        "answer",
        record.audit_payload(),
        actor=docket.settings.actor,
        request_id=record.request_id,
        subjects=sorted({e.doc_sha256 for e in record.evidence}),
        status=record.status,
    )
    record.audit_seq = appended.seq
    return record


def answer_questions(
    docket: Docket, questions: list[Question], defaults: BatchDefaults,
    on_answer: Callable[[Question, AnswerRecord], None],
) -> None:
    """Answer every question, recording each as it is answered and then handing it to ``on_answer``."""
    if not questions:
        return

    def recorded(question: Question, record: AnswerRecord) -> None:
        on_answer(question, record_answer(docket, record))

    s = docket.settings
    workers = s.llm.concurrency if s.reasoner == "magistral" else 1
    if s.compute.engine == "ray":
        _on_ray(docket, questions, defaults, workers, recorded)
    else:
        _on_threads(docket, questions, defaults, workers, recorded)


def _on_threads(docket, questions, defaults, workers, recorded) -> None:
    _ = docket.reasoner, docket.audit  # built once here, not raced for by the threads (as a review does)
    docket.store.vectors()
    docket.store.lexical()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="questions")
    try:
        pending: dict[Future, Question] = {
            pool.submit(ask, docket, q.question, ask_options(q, defaults)): q for q in questions
        }
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                recorded(pending.pop(future), future.result())
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)  # answers in flight are dropped, asked again next time
        raise
    pool.shutdown(wait=True)


def _on_ray(docket, questions, defaults, workers, recorded) -> None:
    from pipeline.compute.cluster import (
        ComputeError, actor_count, check_shared_databases, import_ray, in_flight, ray_cluster,
    )
    from pipeline.compute.fanout import fan_out
    from pipeline.compute.review import llm_slots, ready
    from pipeline.compute.snapshots import DriverSnapshots, write_first
    from pipeline.compute.workers import start_workers

    s = docket.settings
    ray = import_ray()  # without Ray installed: one line saying how to install it
    with ray_cluster(s.compute) as cluster:
        check_shared_databases(s, cluster)
        written = write_first(docket)
        snapshots = DriverSnapshots(docket, written)
        actors = start_workers(s, actor_count(s.compute, cluster), workers, llm_slots(docket, cluster.driver_node),
                               s.compute.task_retries, written)
        try:
            ready(actors)

            def give_up(question: Question, why: str) -> None:
                # Stop: the answers recorded so far are kept (OUTPUT.partial), and the same command continues.
                raise ComputeError(f"question {question.id!r}: not answered, {why}; run the same command again")

            fan_out(
                actors, questions,
                submit=lambda actor, q: actor.ask.remote(q.question, ask_options(q, defaults)),
                on_result=lambda question, result: (snapshots.before(result.snapshots), recorded(question, result.value)),
                on_give_up=give_up,
                window=in_flight(s.compute, cluster, at_least=len(actors) * workers),
                retries=s.compute.task_retries,
            )
        finally:
            for actor in actors:
                ray.kill(actor)
