"""The options several `docket` commands share (ask, chat, docs, ingest), and reading a document's tags.

Imports typer only: the root app defines its commands with these, and `docket --help` must cost typer
and rich alone.
"""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline.cli.plumbing import USAGE, fail, parse_day

CollectionOpt = Annotated[str | None, typer.Option("--collection", "-c", help="Collection (default from config).")]
TypeFilterOpt = Annotated[list[str] | None, typer.Option("--type", "-t", help="Only documents of this type (as tagged); repeatable.")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="Only documents dated on or after this day (YYYY-MM-DD).")]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Only documents dated on or before this day (YYYY-MM-DD).")]
DocumentRef = Annotated[str, typer.Argument(help="Document id, file name or SHA-256 prefix.")]


def document_tags(doc_type: str | None, doc_date: str | None):
    """``--type``/``--date`` as the store's ``DocumentTags``, or a one-line usage error naming the flag."""
    from ingest.store import DocumentTags

    if doc_type is not None and not doc_type.strip():
        fail("--type: give a non-empty document type, e.g. 10-K or NDA", USAGE)
    return DocumentTags(doc_type.strip() if doc_type else None, parse_day(doc_date, "--date"))
