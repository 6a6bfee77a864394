"""What Ray's workers run at ingest: read a document (its OCR pages as tasks of their own), chunk it,
and encode chunk texts on actors that load the encoder once.

The functions are plain (they run in any process), made remote by ``remote_functions`` on first use, so
importing this module needs no Ray. None of them touches the registry: the driver decides what is
encoded and commits, so a task that runs twice (its worker died and Ray retried it) changes nothing.
Each returns its result or a ``TaskFailure`` with the one-line error a local ingest would give; a
worker or node that dies is Ray's failure, retried by Ray and then by the driver.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from ingest.config import ChunkingSettings, EmbeddingSettings, IngestSettings, OcrSettings
from ingest.embedding import Encoder
from ingest.extract import read_document
from ingest.models import Chunk, Deadline, ExtractedDocument, IngestError, PageText, display_path, printable
from ingest.store import chunk_for_encoder, encode_texts

log = logging.getLogger(__name__)


@dataclass
class TaskFailure:
    """A document that cannot be ingested, for a reason of its own (not a dead worker): one line."""

    error: str


@dataclass
class PreparedText:
    """A document read and chunked on a worker; the driver decides which chunk texts to encode."""

    extracted: ExtractedDocument
    chunks: list[Chunk]
    seconds: float  # of the document's time limit spent so far (reading, OCR, chunking)
    node: str  # the Ray node that read it


def unexpected(name: str, exc: BaseException) -> TaskFailure:
    # The words of DocumentStore.ingest for the same case, so a failure reads alike on either engine.
    return TaskFailure(printable(
        f"{name}: unexpected error ({type(exc).__name__}: {exc}); run with -v for the details and report it"
    ))


@lru_cache(maxsize=4)
def _tokenizer_encoder(embedding_json: str) -> Encoder:
    """An Encoder for chunking: only its tokenizer and declared length are loaded, never the model."""
    return Encoder(EmbeddingSettings.model_validate_json(embedding_json))


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"


def prepare_text(
    path: Path, sha256: str, ocr: OcrSettings, limits: IngestSettings, embedding: EmbeddingSettings,
    chunking: ChunkingSettings, page_retries: int,
) -> PreparedText | TaskFailure:
    """Read ``path`` (its pages that need OCR as Ray tasks) and chunk it, under the document's time limit."""
    name = display_path(path)
    deadline = Deadline(limits.document_timeout_s)
    try:
        # One process a page is Ray's to schedule, not a process pool's inside this task.
        single = ocr.model_copy(update={"workers": 1})
        extracted = read_document(path, single, limits, deadline, read_ocr_pages=ocr_pages_reader(page_retries))
        if extracted.sha256 != sha256:
            return TaskFailure(
                f"{name}: the bytes read on node {_node_id()[:12]} are not those the driver hashed "
                f"({extracted.sha256[:12]} against {sha256[:12]}); the file changed, or this path is another "
                "file on that node: every node must see the same files at the same paths (docs/scale.md)"
            )
        deadline.check(name, "stopped after reading its pages, before chunking")
        chunks = chunk_for_encoder(extracted, _tokenizer_encoder(embedding.model_dump_json()), chunking)
        deadline.check(name, "stopped after chunking, before embedding")
    except IngestError as exc:
        return TaskFailure(printable(str(exc)))
    except Exception as exc:  # a reader's bug must cost this file only, as locally
        log.debug("reading %s failed", name, exc_info=True)
        return unexpected(name, exc)
    return PreparedText(extracted, chunks, time.monotonic() - deadline.started, _node_id())


def ocr_page(path: Path, number: int, ocr: OcrSettings, route: str) -> PageText:
    """One PDF page read from pixels: ``ocr_pdf_pages`` for that page alone, in this process."""
    from ingest.ocr import ocr_pdf_pages

    return ocr_pdf_pages(path, [number], ocr.model_copy(update={"workers": 1}), routes={number: route})[0]


def ocr_pages_reader(retries: int):
    """A ``read_ocr_pages`` for ``read_document`` that reads each page as a Ray task (any node)."""

    def read(pdf_path: Path, numbers: list[int], settings: OcrSettings, routes=None, between=None) -> list[PageText]:
        import ray
        from ray.exceptions import RayTaskError

        from ingest.ocr.pages import DEFAULT_ROUTE

        task = remote_functions().ocr_page.options(max_retries=retries)
        refs = [task.remote(pdf_path, n, settings, (routes or {}).get(n, DEFAULT_ROUTE)) for n in numbers]
        try:
            waiting, done = list(refs), 0
            while waiting:
                _, waiting = ray.wait(waiting, num_returns=1)
                done += 1
                if between:
                    between(done)  # the document's deadline, as between local OCR pages
            return ray.get(refs)
        except RayTaskError as exc:
            for ref in refs:
                ray.cancel(ref)
            if isinstance(exc.cause, IngestError):  # the page's own one-line error, not Ray's traceback
                raise exc.cause from None
            raise
        except BaseException:
            for ref in refs:  # pages not started are never read (a deadline passed, the driver stopped)
                ray.cancel(ref)
            raise

    return read


class EncoderWorker:
    """An actor holding the encoder, loaded once; encodes the chunk texts the driver sends."""

    def __init__(self, embedding: EmbeddingSettings):
        self.encoder = Encoder(embedding)
        self.encoder.encode(["Docket"])  # loads the tokenizer and the model now, not in a document's time

    def encode(self, name: str, texts: list[str], seconds_left: float, done: int, total: int) -> np.ndarray | TaskFailure:
        """Vectors of one document's texts to encode, in ingest's groups and batches (``encode_texts``)."""
        deadline = Deadline(seconds_left)
        try:
            vectors = encode_texts(
                self.encoder, texts, lambda d: deadline.check(name, f"stopped after embedding {d} of {total} chunks"), done
            )
            deadline.check(name, "stopped after embedding, before storing")
        except IngestError as exc:
            return TaskFailure(printable(str(exc)))
        except Exception as exc:
            log.debug("encoding %s failed", name, exc_info=True)
            return unexpected(name, exc)
        return vectors

    def node(self) -> str:
        return _node_id()


@lru_cache(maxsize=1)
def remote_functions() -> SimpleNamespace:
    """The remote versions of the above (Ray imported here, on first use)."""
    import ray

    return SimpleNamespace(
        prepare_text=ray.remote(prepare_text),
        ocr_page=ray.remote(ocr_page),
        EncoderWorker=ray.remote(EncoderWorker),
    )
