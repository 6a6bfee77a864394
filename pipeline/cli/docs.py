"""`docket docs ...`: list, show, tag and remove ingested documents.

``document_summary`` is a document's JSON as docs/cli.md lists its keys; the service's document routes
answer with the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from pipeline.cli.options import CollectionOpt, DocumentRef, SinceOpt, TypeFilterOpt, UntilOpt, document_tags
from pipeline.cli.plumbing import FAILED, USAGE, JsonFlag, error_message, fail, parse_day, print_json

DOCS_HELP = "List, inspect and remove ingested documents."

console = Console()


def document_summary(doc) -> dict[str, Any]:
    """A registry document as JSON: its current version's hash, pages, status and tags."""
    current = next((v for v in reversed(doc.versions) if v.status == "current"), doc.versions[-1])
    return {
        "id": doc.id,
        "name": doc.name,
        "collection": doc.collection,
        "source": doc.source_key,
        "sha256": current.sha256,
        "version": current.version,
        "status": "removed" if doc.removed_at else current.status,
        "pages": current.page_count,
        "title": current.title,
        "type": doc.doc_type,
        "date": doc.doc_date.isoformat() if doc.doc_date else None,
        "ingested_at": current.ingested_at.isoformat() + "Z",
    }


def make_docs_app(get_docket: Callable[[], Any]) -> typer.Typer:
    """The `docs` command group; ``get_docket`` is called when a command runs."""
    app = typer.Typer(help=DOCS_HELP, no_args_is_help=True)

    @app.command("list")
    def docs_list(
        collection: CollectionOpt = None,
        all_: Annotated[bool, typer.Option("--all", help="Include removed documents.")] = False,
        doc_type: TypeFilterOpt = None,
        since: SinceOpt = None,
        until: UntilOpt = None,
        as_json: JsonFlag = False,
    ) -> None:
        """List documents: id, name, type, date, current version, pages."""
        from ingest.store import DocumentFilter

        where = DocumentFilter(doc_types=tuple(doc_type or ()), since=parse_day(since, "--since"), until=parse_day(until, "--until"))
        docs = [document_summary(d) for d in get_docket().store.documents(collection, include_removed=all_, where=where)]
        if as_json:
            print_json({"documents": docs})
            return
        table = Table("id", "name", "type", "date", "collection", "version", "pages", "sha256", "status")
        for d in docs:
            table.add_row(
                str(d["id"]), escape(d["name"]), escape(d["type"] or "-"), d["date"] or "-", d["collection"],
                str(d["version"]), str(d["pages"]), d["sha256"][:12], d["status"],
            )
        console.print(table)

    @app.command("show")
    def docs_show(
        doc: DocumentRef,
        pages: Annotated[bool, typer.Option("--pages", help="Include each page's text and how it was read.")] = False,
        collection: CollectionOpt = None,
        as_json: JsonFlag = False,
    ) -> None:
        """Show a document: its versions and, with --pages, every page's text, reader, engine, DPI and confidence."""
        try:
            document = get_docket().store.resolve(doc, collection)
        except LookupError as exc:
            fail(error_message(exc), USAGE)
        data = document_summary(document)
        data["versions"] = [
            {"version": v.version, "sha256": v.sha256, "status": v.status, "pages": v.page_count,
             "size_bytes": v.size_bytes, "ingested_at": v.ingested_at.isoformat() + "Z"}
            for v in document.versions
        ]
        current = next((v for v in reversed(document.versions) if v.sha256 == data["sha256"]), document.versions[-1])
        if pages:  # a key of its own: "pages" stays the page count, whatever the flags
            data["page_details"] = [
                {"page": p.number, "text": p.text, "reader": p.method, "engine": p.engine_version, "dpi": p.dpi,
                 "confidence": p.confidence, "route": p.route, "notes": p.notes}
                for p in current.pages
            ]
        if as_json:
            print_json(data)
            return
        console.print(f"[bold]{escape(data['name'])}[/] (id {data['id']}, {data['status']}) in {data['collection']!r}")
        for v in data["versions"]:
            console.print(f"  v{v['version']} {v['sha256']} {v['status']} {v['pages']} pages, ingested {v['ingested_at']}")
        if pages:
            for p in data["page_details"]:
                conf = "-" if p["confidence"] is None else f"{p['confidence']:.2f}"
                console.print(Panel(escape(p["text"]) or "[dim](no text)[/]",
                                    title=f"page {p['page']} · {p['reader']} ({escape(p['engine'])}) · dpi {p['dpi'] or '-'} · confidence {conf}"))

    @app.command("tag")
    def docs_tag(
        doc: DocumentRef,
        doc_type: Annotated[str | None, typer.Option("--type", "-t", help="The document's type (10-K, NDA, ...).")] = None,
        doc_date: Annotated[str | None, typer.Option("--date", help="The document's own date (YYYY-MM-DD).")] = None,
        collection: CollectionOpt = None,
        as_json: JsonFlag = False,
    ) -> None:
        """Set a document's type and/or date, which `ask --type/--since/--until` filter on."""
        if doc_type is None and doc_date is None:
            fail("docs tag: give --type and/or --date", USAGE)
        tags = document_tags(doc_type, doc_date)
        try:
            document = get_docket().store.tag(doc, tags, collection)
        except LookupError as exc:
            fail(error_message(exc), USAGE)
        data = document_summary(document)
        if as_json:
            print_json({"tagged": {k: data[k] for k in ("id", "name", "type", "date")}})
        else:
            console.print(f"Tagged {escape(data['name'])} (id {data['id']}): type {escape(data['type'] or '-')}, date {data['date'] or '-'}.")

    @app.command("remove")
    def docs_remove(
        doc: DocumentRef,
        collection: CollectionOpt = None,
        as_json: JsonFlag = False,
    ) -> None:
        """Take a document out of the live index. Its versions stay in the registry for audit and replay."""
        from pipeline.documents import UnrecordedChange, remove_document

        try:
            removed = remove_document(get_docket(), doc, collection)  # and its document_removed audit event
        except LookupError as exc:
            fail(error_message(exc), USAGE)
        except UnrecordedChange as exc:
            fail(str(exc), FAILED)
        if as_json:
            print_json({"removed": {"id": removed.id, "name": removed.name}})
        else:
            console.print(f"Removed {escape(removed.name)} (id {removed.id}) from the live index; its versions stay on record.")

    return app
