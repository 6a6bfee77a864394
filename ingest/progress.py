"""Progress of the document being ingested, for whoever is watching (the service's upload job).

A context variable rather than a parameter: the readers, OCR and encoder steps sit several calls below
the caller that wants to know, and a CLI run, a test or a Ray task that sets nothing pays one lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# (step, done, total): "reading pages" / "OCR" / "embedding" / "storing", counted in pages or passages.
ProgressListener = Callable[[str, int, int], None]

_listener: ContextVar[ProgressListener | None] = ContextVar("docket_ingest_progress", default=None)


def report(step: str, done: int, total: int) -> None:
    """Tell the listener of this context, if any, how far the current document's `step` is."""
    listener = _listener.get()
    if listener is not None:
        listener(step, done, total)


@contextmanager
def listening(listener: ProgressListener) -> Iterator[None]:
    """Send the progress of every document ingested inside the block (in this thread) to `listener`."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
