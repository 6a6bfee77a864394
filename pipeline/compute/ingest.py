"""Ingest on Ray: the same files, the same versions, chunks and vectors as ``DocumentStore.ingest``.

The driver (this process) holds the workspace's writer lock for the run, as a local ingest does, and
walks the files in the same order:

1. hash each file and skip the bytes already current (``DocumentStore.find_unchanged``), as locally;
2. send the rest to ``prepare_text`` tasks: read (each page that needs OCR a task of its own) and chunk;
3. in file order, decide which chunk texts a local ingest would encode: those with no vector in the
   registry and in no earlier file of this run (that file's commit will have stored it by then); send
   them, a document at a time, to an encoder actor, which encodes them in ingest's own groups and
   batches (``ingest.store.encode_texts``): a vector depends on the texts batched with it, so the same
   texts give the same vectors to the bit;
4. in file order, commit each version in one transaction (``DocumentStore.commit_version``), after
   checking that the registry holds every vector step 3 counted on (an earlier file of the run may have
   failed); if not, the document's texts are encoded again as a local ingest would have.

Only the driver writes, so a task Ray runs twice (its worker or node died) duplicates nothing: its
result is used once. A dead task is retried by Ray (``compute.task_retries``) and then resubmitted by the
driver as many times; after that its file fails with one line, and the batch goes on. A driver killed
mid-run leaves whole versions only (each is one transaction); the same command again skips them as
unchanged and does the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.models import IngestError, display_path, printable
from ingest.store import DocumentTags, FileResult, IngestReport, embedding_text, iter_input_files
from pipeline.app import Docket
from pipeline.compute.cluster import actor_count, in_flight, ray_cluster, retry_note
from pipeline.compute.ingest_tasks import PreparedText, TaskFailure, remote_functions

log = logging.getLogger(__name__)


@dataclass
class _File:
    index: int
    path: Path
    name: str
    sha256: str | None = None
    result: FileResult | None = None  # set once the file is settled: unchanged, failed or committed
    prepared: PreparedText | None = None
    todo: list[int] | None = None  # chunk indexes to encode, as planned in file order
    vectors: np.ndarray | None = None  # of the ``todo`` chunks
    attempts: int = 0  # driver resubmissions after Ray's own retries

    @property
    def ready(self) -> bool:
        if self.result is not None:
            return True
        return self.prepared is not None and self.todo is not None and (not self.todo or self.vectors is not None)


def ingest_on_ray(
    docket: Docket,
    paths: Iterable[Path],
    collection: str,
    on_file: Callable[[FileResult], None] | None = None,
    tags: DocumentTags | None = None,
    placements: dict[str, str] | None = None,
) -> IngestReport:
    """``DocumentStore.ingest`` on the Ray cluster ``compute`` names. ``placements``, when given, gets each
    read file's name -> the node that read it (the benches and the fault test look)."""
    store, s = docket.store, docket.settings
    tags = tags or DocumentTags()
    report = IngestReport()
    with ray_cluster(s.compute) as cluster, store.writer_lock():
        remote = remote_functions()
        retries = s.compute.task_retries
        encoders: list = []  # started with the first text to encode: a run of unchanged files loads no model
        load: list[int] = []  # calls outstanding per encoder
        files = [_File(i, p, display_path(p)) for i, p in enumerate(iter_input_files(paths))]
        window = in_flight(s.compute, cluster)
        waiting: dict = {}  # ObjectRef -> (kind, file, encoder index)
        planned: set[tuple[str, str]] = set()  # (text SHA-256, context) of the chunks of earlier files

        def settle(f: _File, result: FileResult) -> None:
            f.result, f.prepared, f.vectors = result, None, None

        def fail(f: _File, error: str) -> None:
            settle(f, FileResult(f.name, "failed", f.sha256, error=printable(error)))

        def submit_text(f: _File) -> None:
            ref = remote.prepare_text.options(max_retries=retries).remote(
                f.path, f.sha256, s.ocr, s.ingest, s.embedding, s.chunking, retries
            )
            waiting[ref] = ("text", f, None)

        def submit_vectors(f: _File, todo: list[int]) -> None:
            if not encoders:
                for _ in range(actor_count(s.compute, cluster)):
                    encoders.append(remote.EncoderWorker.options(
                        max_restarts=-1, max_task_retries=retries, scheduling_strategy="SPREAD"
                    ).remote(s.embedding))
                    load.append(0)
            chunks = f.prepared.chunks
            which = min(range(len(encoders)), key=load.__getitem__)
            load[which] += 1
            seconds_left = s.ingest.document_timeout_s - f.prepared.seconds
            ref = encoders[which].encode.remote(
                f.name, [embedding_text(chunks[i]) for i in todo], seconds_left, len(chunks) - len(todo), len(chunks)
            )
            waiting[ref] = ("vectors", f, which)

        def plan(f: _File) -> None:
            """The chunks a local ingest would encode for this file, given the files before it."""
            chunks = f.prepared.chunks
            keys = [(c.text_sha256, c.context) for c in chunks]
            known = store.stored_vectors(chunks)
            f.todo = [i for i, key in enumerate(keys) if key not in known and key not in planned]
            planned.update(keys)
            if f.todo:
                submit_vectors(f, f.todo)

        def commit(f: _File) -> None:
            chunks = f.prepared.chunks
            known = store.stored_vectors(chunks)
            todo = [i for i, c in enumerate(chunks) if (c.text_sha256, c.context) not in known]
            if todo != f.todo:
                # A file this one counted on did not commit its vectors: encode what a local ingest would.
                log.info("%s: re-encoding %d chunks an earlier file of the run did not store", f.name, len(todo))
                f.todo, f.vectors = todo, None
                submit_vectors(f, todo)
                return
            if f.vectors is not None:
                dimension = f.vectors.shape[1]
            elif known:  # every vector is stored already: its width is theirs
                dimension = len(next(iter(known.values()))) // np.dtype(np.float32).itemsize
            else:  # a document without chunks
                dimension = store.encoder.dimension
            vectors = np.zeros((len(chunks), dimension), dtype=np.float32)
            encoded = set(todo)
            for i, c in enumerate(chunks):
                if i not in encoded:
                    vectors[i] = np.frombuffer(known[(c.text_sha256, c.context)], dtype=np.float32)
            if todo:
                vectors[todo] = f.vectors
            try:
                settle(f, store.commit_version(f.path, collection, f.prepared.extracted, chunks, vectors, tags))
            except Exception as exc:  # as DocumentStore.ingest: one file's failure, the batch goes on
                log.debug("committing %s failed", f.name, exc_info=True)
                fail(f, f"{f.name}: unexpected error ({type(exc).__name__}: {exc}); run with -v for the details and report it")

        def received(ref) -> None:
            import ray
            from ray.exceptions import RayError

            kind, f, which = waiting.pop(ref)
            if which is not None:
                load[which] -= 1
            try:
                value = ray.get(ref)
            except RayError as exc:  # its worker or node died more often than Ray retries
                f.attempts += 1
                if f.attempts > retries:
                    fail(f, f"{f.name}: its Ray task failed {f.attempts} times ({retry_note(exc)}); "
                            "run the same command again to retry it")
                elif kind == "text":
                    submit_text(f)
                else:
                    submit_vectors(f, f.todo)
                return
            if f.result is not None:
                return
            if isinstance(value, TaskFailure):
                fail(f, value.error)
            elif kind == "text":
                f.prepared = value
                if placements is not None:
                    placements[f.name] = value.node
            else:
                f.vectors = value

        import ray

        submitted = planned_upto = committed = 0
        try:
            while committed < len(files):
                while submitted < len(files) and submitted - committed < window:
                    f = files[submitted]
                    submitted += 1
                    try:
                        f.sha256, unchanged = store.find_unchanged(f.path, collection, tags)
                    except IngestError as exc:
                        fail(f, str(exc))
                        continue
                    except Exception as exc:
                        log.debug("hashing %s failed", f.name, exc_info=True)
                        fail(f, f"{f.name}: unexpected error ({type(exc).__name__}: {exc}); run with -v for the details and report it")
                        continue
                    if unchanged is not None:
                        settle(f, unchanged)
                    else:
                        submit_text(f)
                while planned_upto < submitted and (files[planned_upto].result or files[planned_upto].prepared):
                    f = files[planned_upto]
                    if f.result is None:
                        plan(f)
                    planned_upto += 1
                while committed < planned_upto and files[committed].ready:
                    f = files[committed]
                    if f.result is None:
                        commit(f)
                        if f.result is None:  # sent to be encoded again
                            break
                    report.results.append(f.result)
                    committed += 1
                    if on_file:
                        on_file(f.result)
                if committed < len(files):
                    if not waiting:  # every file not settled has a task out; none out means a bug here
                        raise RuntimeError(f"Ray ingest stalled at file {committed + 1} of {len(files)} with nothing running")
                    ready, _ = ray.wait(list(waiting), num_returns=1)
                    for ref in ready:
                        received(ref)
        finally:
            for encoder in encoders:
                ray.kill(encoder)
    return report
