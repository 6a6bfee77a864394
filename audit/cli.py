"""The audit commands (`docket audit ...`, or `python -m audit --db URL --keys DIR ...` with audit/ alone)."""

from __future__ import annotations

import functools
import json
from itertools import islice
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from audit.errors import AuditError, AuditLockTimeout
from audit.log import DEFAULT_LOCK_TIMEOUT, AuditLog
from audit.records import DECISION_EVENTS, Entry, EntryFilter
from audit.verification import VERIFIER_SCRIPT
from audit.verification.hostile_files import sha256_file


@dataclass(frozen=True)
class AuditContext:
    """Where the log lives and who is acting; supplied by the caller (pipeline settings or flags)."""

    url: str
    keys_dir: Path | None
    actor: str
    checkpoint_every: int | None = None
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT  # seconds a write waits for another writer's lock
    witness: Path | None = None  # JSONL file outside the database that receives every signed head
    witness_command: tuple[str, ...] | None = None  # argv that receives every signed head on stdin
    trusted_keys: tuple[str, ...] = ()  # public key files or key ids verify trusts beside the keys dir's


_F = TypeVar("_F", bound=Callable[..., Any])
# No markup: entries hold arbitrary text ("[GDPR Art. 17]") that must print as it is.
_out = Console(highlight=False, soft_wrap=True, markup=False)
_err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Since = Annotated[str | None, typer.Option(help="Entries at or after this UTC time (ISO, e.g. 2026-03-01).")]
Until = Annotated[str | None, typer.Option(help="Entries before this UTC time (ISO).")]
Actor = Annotated[str | None, typer.Option("--actor", help="Only this actor.")]
EventType = Annotated[str | None, typer.Option("--type", help="Only this event type (answer, review_finding, ...).")]
Subject = Annotated[
    str | None, typer.Option("--subject", "--document", help="Only entries about this subject (e.g. a document sha256).")
]
Status = Annotated[str | None, typer.Option(help="Only this status (answered, refused, incomplete, error).")]
Limit = Annotated[int, typer.Option(min=0, help="Show at most this many entries (0: all).")]


def _user_errors(command: _F) -> _F:
    """An AuditError becomes one line on stderr and exit code 2 (1 for a lock timeout), never a traceback."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except AuditError as error:
            _err.print(f"error: {error}")
            # A busy log is a failure to retry (exit 1), not bad usage (README, "Exit codes").
            raise typer.Exit(1 if isinstance(error, AuditLockTimeout) else 2) from None

    return run  # type: ignore[return-value]


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))


ABOUT_WIDTH = 60  # characters of an entry's question or subject shown in a table


def entry_about(event_type: str, payload: Any) -> str:
    """What an entry is about, in a few words from its payload: an answer's question, a review finding's
    item and document, a document event's file name, a decision's target seq. Empty when the payload is
    redacted or names none of these (the full payload is one `audit show SEQ` away)."""
    if not isinstance(payload, dict):
        return ""

    def text(key: str) -> str:
        value = payload.get(key)
        return " ".join(str(value).split()) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""

    document = payload.get("document")
    document_name = document.get("name") if isinstance(document, dict) else None
    parts: list[str]
    if text("question"):
        parts = [text("question")]
    elif text("item_id"):  # review findings and sign-offs
        parts = [text("item_id"), str(document_name or ""), text("decision")]
    elif event_type in ("sign_off", "rejection", "correction", "redaction") and text("seq"):
        parts = [f"#{text('seq')}", text("note") or text("reason")]
    elif text("name"):  # document events, identity events
        parts = [text("name")]
    elif text("review_id"):
        parts = [f"review {text('review_id')}"]
    elif text("command"):  # the log's own read events
        parts = [text("command")]
    else:
        parts = [text("action")]
    about = " · ".join(p for p in parts if p)
    return about if len(about) <= ABOUT_WIDTH else about[: ABOUT_WIDTH - 1] + "…"


def _entry_table(rows: Iterator[Entry], limit: int) -> tuple[Table, int]:
    table = Table("seq", "time (UTC)", "type", "actor", "status")
    table.add_column("about", min_width=24)  # what an entry is about gets the room; ids are prefixes
    table.add_column("request")
    table.add_column("subjects")
    count = 0
    for entry in islice(rows, limit or None):
        subjects = ", ".join(s[:16] for s in entry.subjects)
        status = entry.status or ""
        if entry.redaction is not None:
            status = f"{status} (redacted)".strip()
        table.add_row(str(entry.seq), entry.time[:19], entry.event_type, entry.actor, status,
                      entry_about(entry.event_type, entry.payload), (entry.request_id or "")[:12], subjects)
        count += 1
    return table, count


def make_app(get_context: Callable[[], AuditContext]) -> typer.Typer:
    """The `audit` command group; `get_context` is called when a command runs."""
    app = typer.Typer(help="Append-only, signed audit log: list, show, verify, prove, export.", no_args_is_help=True)

    def open_log() -> AuditLog:
        context = get_context()
        if not context.url:
            raise AuditError("no audit database: pass --db URL (or set DOCKET_AUDIT_URL)")
        return AuditLog.open(
            context.url, context.keys_dir, context.checkpoint_every, create=False, lock_timeout=context.lock_timeout,
            witness=context.witness, witness_command=context.witness_command, trusted_keys=context.trusted_keys,
        )

    def list_or_search(command: str, filters: EntryFilter, limit: int, as_json: bool) -> None:
        """Entries as of the log's size now, recorded as a read event before they are shown.

        The read event comes after that size, so it is never in the list it records. A text search
        skips the log's own read events unless asked for them (`--type read`): each holds the text a
        search looked for, so every search would otherwise find all the earlier ones.
        """
        with open_log() as log:
            size = log.size
            rows: Iterator[Entry] = log.filtered(filters, up_to=size)
            if filters.text and filters.event_type is None:
                rows = (e for e in rows if e.event_type != "read")
            shown = list(islice(rows, limit or None))
            log.append(
                "read",
                {
                    "command": command, "filters": filters.describe(), "limit": limit, "up_to": size,
                    "returned": len(shown), "first_seq": shown[0].seq if shown else None,
                    "last_seq": shown[-1].seq if shown else None,
                },
                actor=get_context().actor,
            )
        if as_json:
            _print_json([e.to_dict() for e in shown])
            return
        table, count = _entry_table(iter(shown), 0)
        _out.print(table)
        _out.print(f"{count} entr{'y' if count == 1 else 'ies'}")

    @app.command("list")
    @_user_errors
    def list_entries(
        since: Since = None, until: Until = None, actor: Actor = None, event_type: EventType = None,
        subject: Subject = None, status: Status = None, limit: Limit = 100, as_json: JsonFlag = False,
    ) -> None:
        """List entries, oldest first, filtered by time, actor, type, document or status. The read is itself logged."""
        list_or_search("list", EntryFilter(since, until, actor, event_type, subject, status), limit, as_json)

    @app.command()
    @_user_errors
    def search(
        text: Annotated[str, typer.Argument(help="Text to find inside payloads (case-insensitive).")],
        since: Since = None, until: Until = None, actor: Actor = None, event_type: EventType = None,
        subject: Subject = None, status: Status = None, limit: Limit = 100, as_json: JsonFlag = False,
    ) -> None:
        """Find entries whose payload contains TEXT (not earlier searches: add --type read). The read is itself logged."""
        list_or_search("search", EntryFilter(since, until, actor, event_type, subject, status, text), limit, as_json)

    @app.command()
    @_user_errors
    def show(seq: Annotated[int, typer.Argument(help="Entry to show.")], as_json: JsonFlag = False) -> None:
        """Show one whole entry (question, evidence, trace, answer, ...). The read is itself logged."""
        with open_log() as log:
            entry = log.read(seq, actor=get_context().actor)
        if as_json:
            _print_json(entry.to_dict())
            return
        for name in ("seq", "time", "event_type", "actor", "request_id", "status", "leaf_hash", "payload_commitment"):
            _out.print(f"{name}: {getattr(entry, name)}")
        _out.print(f"subjects: {', '.join(entry.subjects)}")
        if entry.redaction is not None:
            r = entry.redaction
            _out.print(f"redacted by {r.actor} at {r.time} (seq {r.by_seq}): {r.reason} [{r.legal_basis}]")
        else:
            typer.echo(json.dumps(entry.payload, indent=2, ensure_ascii=False))

    @app.command()
    @_user_errors
    def verify(
        checkpoint: Annotated[
            Path | None, typer.Option(help="A checkpoint file kept outside the database, to catch rewrites and truncation.")
        ] = None,
        workers: Annotated[
            int | None, typer.Option(min=1, help="Processes checking seq ranges in parallel (default: 1; more pay only on idle cores).")
        ] = None,
        witness: Annotated[
            Path | None, typer.Option(help="A witness file of signed heads (default: the audit.witness setting), to catch a rollback.")
        ] = None,
        as_json: JsonFlag = False,
    ) -> None:
        """Check the whole log in one pass: OK with size and root, or the first bad seq and why."""
        with open_log() as log:
            report = log.verify(checkpoint, workers=workers, witness=witness)
        if as_json:
            _print_json(report.to_dict())
        elif report.ok:
            redacted = f", {len(report.redacted)} redacted (seq {', '.join(map(str, report.redacted))})" if report.redacted else ""
            _out.print(
                f"OK size={report.size} root={report.root} checkpoints={report.checkpoints_verified} "
                f"signed_heads={report.signed_heads_verified}{redacted}"
            )
            for note in report.notes:
                _out.print(f"note: {note}")
        else:
            # Most problems already begin with the seq they concern; a checkpoint's has none to name.
            where = f"seq {report.first_bad_seq}"
            named = report.first_bad_seq is None or report.problem.startswith(where)
            _out.print(f"FAIL {report.problem}" if named else f"FAIL {where}: {report.problem}")
        if not report.ok:
            raise typer.Exit(1)

    @app.command()
    @_user_errors
    def checkpoint(
        output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the signed checkpoint here.")] = None,
        as_json: JsonFlag = False,
    ) -> None:
        """Sign a checkpoint (size, root, time, key id) now; keep the file outside the database."""
        with open_log() as log:
            signed = log.checkpoint(output, actor=get_context().actor)
        if as_json:
            _print_json(signed)
        else:
            where = f" -> {output}" if output else ""
            _out.print(f"checkpoint size={signed['size']} root={signed['root']} key={signed['key_id']}{where}")

    @app.command()
    @_user_errors
    def prove(
        seq: Annotated[int, typer.Argument(help="Entry to prove.")],
        size: Annotated[int | None, typer.Option(help="Tree size to prove against (default: whole log).")] = None,
        as_json: JsonFlag = False,
    ) -> None:
        """RFC 9162 inclusion proof of one entry."""
        with open_log() as log:
            proof = log.prove(seq, size)
        if as_json:
            _print_json(proof)
        else:
            _out.print(f"seq {proof['seq']} in tree of {proof['tree_size']} (root {proof['root']}):")
            _out.print(f"leaf {proof['leaf_hash']}, {len(proof['path'])} hashes: " + " ".join(proof["path"]))

    @app.command()
    @_user_errors
    def annotate(
        seq: Annotated[int, typer.Argument(help="Entry the decision is about.")],
        decision: Annotated[str, typer.Option(help=f"One of: {', '.join(DECISION_EVENTS)}.")],
        note: Annotated[str, typer.Option(help="The reviewer's note.")] = "",
        as_json: JsonFlag = False,
    ) -> None:
        """Record a reviewer's decision (approve, reject, correct) about an entry."""
        with open_log() as log:
            appended = log.annotate(seq, decision, note, actor=get_context().actor)
        _report_appended(appended.seq, appended.leaf_hash, appended.time, as_json)

    @app.command()
    @_user_errors
    def redact(
        seq: Annotated[int, typer.Argument(help="Entry whose payload to erase.")],
        reason: Annotated[str, typer.Option(help="Why (do not repeat the personal data here).")],
        legal_basis: Annotated[str, typer.Option(help="e.g. 'GDPR Art. 17' or a retention rule.")],
        as_json: JsonFlag = False,
    ) -> None:
        """Erase an entry's payload; the chain still verifies and reports it as redacted."""
        with open_log() as log:
            appended = log.redact(seq, reason, legal_basis, get_context().actor)
        _report_appended(appended.seq, appended.leaf_hash, appended.time, as_json)

    @app.command()
    @_user_errors
    def export(
        output: Annotated[Path, typer.Option("-o", "--output", help="New directory for the bundle.")],
        since: Since = None, until: Until = None, actor: Actor = None, event_type: EventType = None,
        subject: Subject = None, status: Status = None,
        checkpoint: Annotated[
            Path | None, typer.Option(help="Export as of this checkpoint file (default: sign a new one).")
        ] = None,
        as_json: JsonFlag = False,
    ) -> None:
        """Write a self-verifying bundle (entries, proofs, checkpoints, keys, verify_bundle.py)."""
        with open_log() as log:
            result = log.export(
                output, EntryFilter(since, until, actor, event_type, subject, status),
                actor=get_context().actor, checkpoint=checkpoint,
            )
        if as_json:
            _print_json(result)
        else:
            _out.print(f"exported {result['entries']} entries proven against size {result['tree_size']} to {output}")
            _out.print(
                f"an auditor checks it with the verifier of a Docket release (`audit verifier` prints its SHA-256): "
                f"python verify_bundle.py {output} --trust LOG_KEY.pub"
            )

    @app.command("public-keys")
    @_user_errors
    def public_keys(
        output: Annotated[Path, typer.Option("-o", "--output", help="Directory to write the PEM public keys to.")],
        as_json: JsonFlag = False,
    ) -> None:
        """Export the public keys that verify this log's checkpoints."""
        with open_log() as log:
            written = log.export_public_keys(output)
        if as_json:
            _print_json([str(p) for p in written])
        else:
            for path in written:
                _out.print(str(path))

    @app.command("verifier")
    @_user_errors
    def verifier(as_json: JsonFlag = False) -> None:
        """Path and SHA-256 of the bundle verifier this installation ships: compare it with an auditor's copy."""
        path = VERIFIER_SCRIPT
        digest = sha256_file(path)
        if as_json:
            _print_json({"path": str(path), "sha256": digest})
        else:
            _out.print(f"{path}")
            _out.print(f"sha256 {digest}")

    @app.command("rotate-key")
    @_user_errors
    def rotate_key(as_json: JsonFlag = False) -> None:
        """Start signing with a new key; the handover is logged and old checkpoints keep verifying.

        Retires only this workspace's own key; other writers' keys stay valid.
        """
        with open_log() as log:
            key_id = log.rotate_key(actor=get_context().actor)
        if as_json:
            _print_json({"key_id": key_id})
        else:
            _out.print(f"now signing with key {key_id}")

    @app.command("enrol-key")
    @_user_errors
    def enrol_key(
        public_key: Annotated[Path, typer.Argument(help="The other workspace's public key (keys/<key_id>.pub).")],
        as_json: JsonFlag = False,
    ) -> None:
        """Let another writer (workspace, app server) sign this log: its key is announced, endorsed by this one's."""
        with open_log() as log:
            key_id = log.enrol_key(public_key, actor=get_context().actor)
        if as_json:
            _print_json({"key_id": key_id})
        else:
            _out.print(f"enrolled key {key_id}: that workspace can now append to this log")

    return app


def _report_appended(seq: int, leaf: str, time: str, as_json: bool) -> None:
    if as_json:
        _print_json({"seq": seq, "leaf_hash": leaf, "time": time})
    else:
        _out.print(f"appended seq {seq} at {time}")
