"""Parallel verification reports exactly what one pass reports.

`verify(workers=k, range_size=r)` checks seq ranges in worker processes and joins them with
`ChainVerifier.absorb`. Every tamper case below runs through one pass and through several worker /
range layouts, and the whole report (first bad seq, problem, size, root, redactions) must be equal.
A hypothesis test does the same in memory over random damage at random positions, including
range boundaries, with many more layouts than processes would allow.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, delete, insert, update
from test_audit_support import attack, db_url, fill, keys_dir, read_rows, rehash, rewrite  # noqa: F401

from audit import AuditLog
from audit.errors import AuditError
from audit.log_checks import plan_ranges
from audit.schema import entries, head, payloads
from audit.verification.formats import GENESIS_HASH
from audit.verification.tree import Frontier, leaf_hash
from audit.verification.entries import ROW_FIELDS
from audit.verification.chain import VerifyReport, check_range, verify_rows

N = 40
LAYOUTS = [(2, 4), (3, 8), (2, 16)]  # (workers, range_size)


def _leaves(count: int, offset: int = 0) -> list[bytes]:
    return [leaf_hash(str(offset + i).encode()) for i in range(count)]


def _frontier(leaves: list[bytes]) -> Frontier:
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 9), st.integers(0, 64), st.data())
def test_a_range_starting_at_a_multiple_of_its_width_extends_the_tree(log_width: int, blocks: int, data: Any) -> None:
    width = 1 << log_width
    length = data.draw(st.integers(0, width))
    before, part = _leaves(blocks * width), _leaves(length, blocks * width)
    joined = _frontier(before).extended(_frontier(part))
    whole = _frontier(before + part)
    assert (joined.size, joined.hashes, joined.root()) == (whole.size, whole.hashes, whole.root())


def test_a_misaligned_range_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot start at leaf 3"):
        _frontier(_leaves(3)).extended(_frontier(_leaves(2, 3)))


@pytest.mark.parametrize("size", [0, 7, 64, 100, 1000, 100_000])
@pytest.mark.parametrize(("workers", "range_size"), [(1, 4), (2, 4), (2, 16), (2, None), (8, None)])
def test_ranges_tile_the_log_from_seq_1_each_aligned_to_its_width(size: int, workers: int, range_size: int | None) -> None:
    ranges = plan_ranges(size, workers, range_size)
    if workers == 1 or not ranges:
        assert workers == 1 or size < 2 * (range_size or 4096)
        return
    assert ranges[0][0] == 0
    for (after, up_to), (next_after, _) in zip(ranges, ranges[1:] + [(ranges[-1][1], 0)], strict=True):
        width = up_to - after
        assert width & (width - 1) == 0 and after % width == 0 and up_to == next_after
    # What is left for the calling process is less than an eighth of the (common) range width.
    assert ranges[0][1] == (range_size or ranges[0][1]) and 0 <= size - ranges[-1][1] < max(1, ranges[0][1] // 8)


def test_range_size_must_be_a_power_of_two(tmp_path: Path) -> None:
    with AuditLog.open(f"sqlite:///{tmp_path / 'a.db'}") as log, pytest.raises(AuditError, match="power of two"):
        log.verify(workers=2, range_size=6)


# -- the tamper matrix, through worker processes ---------------------------------------------------------


def _move(conn: Connection, old: int, new: int) -> None:
    for table in (entries, payloads):
        conn.execute(update(table).where(table.c.seq == old).values(seq=new))


def _delete(seq: int) -> Callable[[Connection], None]:
    return lambda conn: [conn.execute(delete(t).where(t.c.seq == seq)) for t in (entries, payloads)]


def _renumbered_after_deleting(seq: int) -> Callable[[Connection], None]:
    def edit(conn: Connection) -> None:
        _delete(seq)(conn)
        size = conn.execute(head.select()).one().size
        for later in range(seq + 1, size + 1):
            _move(conn, later, later - 1)
        conn.execute(update(head).values(size=size - 1))

    return edit


def _swapped(seq: int) -> Callable[[Connection], None]:
    def edit(conn: Connection) -> None:
        _move(conn, seq, -1)
        _move(conn, seq + 1, seq)
        _move(conn, -1, seq + 1)

    return edit


def _duplicated_under_same_seq(seq: int) -> Callable[[Connection], None]:
    def edit(conn: Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE entries_copy AS SELECT * FROM audit_entries")
        conn.exec_driver_sql("DROP TABLE audit_entries")
        conn.exec_driver_sql("ALTER TABLE entries_copy RENAME TO audit_entries")
        conn.exec_driver_sql(f"INSERT INTO audit_entries SELECT * FROM audit_entries WHERE seq = {seq}")

    return edit


def _rehashed_status(seq: int) -> Callable[[Connection], None]:
    def edit(conn: Connection) -> None:
        row = read_rows(conn)[seq - 1]
        fixed = rehash(dict(row, status="refused"), row["prev_hash"])
        conn.execute(update(entries).where(entries.c.seq == seq).values(status="refused", leaf_hash=fixed["leaf_hash"]))

    return edit


def _rewritten_from(seq: int) -> Callable[[Connection], None]:
    def edit(conn: Connection) -> None:
        rows = read_rows(conn)
        rows[seq - 1]["payload"] = rows[seq - 1]["payload"].replace("answer", "ANSWER")
        prev, rebuilt = rows[seq - 2]["leaf_hash"], rows[: seq - 1]
        for row in rows[seq - 1:]:
            fixed = rehash(row, prev)
            rebuilt.append(fixed)
            prev = fixed["leaf_hash"]
        rewrite(conn, rebuilt)

    return edit


# With checkpoint_every=8, seq 9 announces the key and checkpoints sit at seq 10, 19, 28, 37, 46
# (signing sizes 9, 18, 27, ...); range boundaries (range_size 4, 8, 16) fall after seq 4, 8, 12, 16, ...
ATTACKS: dict[str, tuple[Callable[[Connection], None], int]] = {
    "payload edited at a range's first row": (
        lambda c: c.execute(update(payloads).where(payloads.c.seq == 9).values(payload='{"i":999}')), 9),
    "payload edited at a range's last row": (
        lambda c: c.execute(update(payloads).where(payloads.c.seq == 16).values(payload='{"i":999}')), 16),
    "payload deleted without redaction": (lambda c: c.execute(delete(payloads).where(payloads.c.seq == 13)), 13),
    "metadata edited": (lambda c: c.execute(update(entries).where(entries.c.seq == 24).values(actor="mallory")), 24),
    "metadata edited and rehashed at a boundary": (_rehashed_status(8), 8),
    "row deleted at a range's first row": (_delete(17), 17),
    "row deleted at a range's last row": (_delete(16), 16),
    "row deleted, later rows renumbered": (_renumbered_after_deleting(12), 12),
    "rows swapped across a boundary": (_swapped(8), 8),
    "row duplicated under the same seq": (_duplicated_under_same_seq(32), 32),
    "tail truncated": (lambda c: [c.execute(delete(t).where(t.c.seq > 30)) for t in (entries, payloads)], 31),
    # The checkpoint of size 18 still matches, the one of size 27 does not: located to 19..27.
    "chain rewritten after a checkpoint": (_rewritten_from(22), 19),
}


@pytest.fixture
def log(db_url: str, keys_dir: Path) -> AuditLog:
    opened = AuditLog.open(db_url, keys_dir, checkpoint_every=8)
    fill(opened, N)
    opened.redact(5, "erasure request", "GDPR Art. 17", "dpo")
    yield opened
    opened.close()


def _same_everywhere(log: AuditLog, checkpoint: Path | None = None) -> VerifyReport:
    one_pass = log.verify(checkpoint, workers=1)
    for workers, range_size in LAYOUTS:
        assert log.verify(checkpoint, workers=workers, range_size=range_size) == one_pass, (workers, range_size)
    return one_pass


def test_an_intact_log_verifies_the_same_in_parallel(log: AuditLog) -> None:
    report = _same_everywhere(log)
    assert report.ok and report.size == log.size and report.redacted == [5] and report.checkpoints_verified == 5


@pytest.mark.parametrize("case", list(ATTACKS))
def test_tamper_matrix_in_parallel(log: AuditLog, db_url: str, case: str) -> None:
    edit, first_bad = ATTACKS[case]
    attack(db_url, edit)
    report = _same_everywhere(log)
    assert not report.ok and report.first_bad_seq == first_bad, report.problem


def test_outside_checkpoint_inside_a_range(log: AuditLog, db_url: str, tmp_path: Path) -> None:
    kept = tmp_path / "kept.json"
    checkpoint = log.checkpoint(kept)
    fill(log, 6)
    assert _same_everywhere(log, kept).ok
    attack(db_url, _rewritten_from(checkpoint["size"] - 3))
    report = _same_everywhere(log, kept)
    assert not report.ok and "were rewritten" in str(report.problem)


# -- random damage, in memory: the join of ranges against one pass -------------------------------------------


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real log's rows (answers, key announcement, checkpoints, a rotation, a redaction) and its keys."""
    workdir = tmp_path_factory.mktemp("parallel")
    with AuditLog.open(f"sqlite:///{workdir / 'audit.db'}", workdir / "keys", checkpoint_every=5) as log:
        fill(log, 14)
        log.rotate_key(actor="admin")
        fill(log, 10)
        log.redact(3, "erasure request", "GDPR Art. 17", "dpo")
        kept = log.checkpoint()
        fill(log, 4)
        with log.engine.connect() as conn:
            rows = read_rows(conn)
        return {"rows": rows, "keys": log.key_store().public_keys(), "log_id": log.log_id, "kept": kept}


DAMAGE = ["payload", "drop_payload", "actor", "subjects", "rehash", "delete", "renumber", "swap", "duplicate",
          "truncate", "rewrite"]


def _damaged(rows: list[dict[str, Any]], kind: str, at: int) -> list[dict[str, Any]]:
    rows = [dict(r) for r in rows]
    row = rows[at]
    if kind == "payload" and row["payload"] is not None:
        row["payload"] = row["payload"][:-1] + " }"
    elif kind == "drop_payload":
        row["payload"] = row["salt"] = None
    elif kind == "actor":
        row["actor"] = "mallory"
    elif kind == "subjects":
        row["subjects"] = '["doc-x"]'
    elif kind == "rehash":
        rows[at] = rehash(dict(row, status="refused"), row["prev_hash"])
    elif kind == "delete":
        del rows[at]
    elif kind == "renumber":
        del rows[at]
        for later in rows[at:]:
            later["seq"] -= 1
    elif kind == "swap" and at + 1 < len(rows):
        rows[at]["seq"], rows[at + 1]["seq"] = rows[at + 1]["seq"], rows[at]["seq"]
    elif kind == "duplicate":
        rows.insert(at, dict(row))
    elif kind == "truncate":
        del rows[at:]
    elif kind == "rewrite" and row["payload"] is not None:
        row["payload"] = row["payload"].replace("answer", "ANSWER")
        prev = rows[at - 1]["leaf_hash"] if at else GENESIS_HASH
        for index in range(at, len(rows)):
            rows[index] = rehash(rows[index], prev)
            prev = rows[index]["leaf_hash"]
    return sorted(rows, key=lambda r: r["seq"])  # as ORDER BY seq returns them


def _as_tuples(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [tuple(r[name] for name in ROW_FIELDS) for r in rows]


def _in_ranges(rows: list[dict[str, Any]], size: int, width: int, mark: int | None) -> tuple[list[Any], list[Any]]:
    """What `AuditLog.verify` does with worker processes, in memory: ranges checked apart, and the tail."""
    def within(after: int, up_to: int | None) -> list[tuple[Any, ...]]:
        return _as_tuples([r for r in rows if (after == 0 or r["seq"] > after) and (up_to is None or r["seq"] <= up_to)])

    ranges = plan_ranges(size, 2, width)
    parts = []
    for after, up_to in ranges:
        boundary = next((r["leaf_hash"] for r in rows if r["seq"] == after), GENESIS_HASH)
        parts.append(check_range([within(after, up_to)], after, boundary, mark))
    return parts, within(ranges[-1][1], None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(DAMAGE), position=st.floats(0, 1, exclude_max=True), log_width=st.integers(0, 3),
       outside=st.booleans(), intact=st.booleans())
def test_random_damage_is_reported_the_same_by_joined_ranges(
    honest: dict[str, Any], kind: str, position: float, log_width: int, outside: bool, intact: bool
) -> None:
    size = len(honest["rows"])
    rows = honest["rows"] if intact else _damaged(honest["rows"], kind, int(position * size))
    options: dict[str, Any] = {
        "log_id": honest["log_id"], "recorded_size": size,
        "outside_checkpoint": honest["kept"] if outside else None, "checkpoint_label": "kept.json",
    }
    one_pass = verify_rows([_as_tuples(rows)], honest["keys"], **options)
    parts, tail = _in_ranges(rows, size, 1 << log_width, honest["kept"]["size"] if outside else None)
    assert verify_rows([tail], honest["keys"], checked_ranges=parts, **options) == one_pass
    if rows == honest["rows"]:
        assert one_pass.ok and one_pass.redacted == [3], one_pass.problem
    elif kind not in ("rewrite", "rehash"):
        # Rehashing the entries after the last signed checkpoint is what no hash chain alone can see.
        assert not one_pass.ok


@pytest.mark.parametrize("edited", [False, True])
def test_a_payload_erased_after_the_verifiers_snapshot_is_judged_by_that_snapshot(honest: dict[str, Any], edited: bool) -> None:
    """SQLite workers read later snapshots: a payload redacted meanwhile is looked up in the verifier's own."""
    rows, size = honest["rows"], len(honest["rows"])
    target = next(r for r in rows if r["event_type"] == "answer" and r["seq"] > 8)
    held = dict(target, payload=target["payload"].replace("answer", "ANSWER") if edited else target["payload"])
    mine = [held if r is target else r for r in rows]
    seen_by_workers = [dict(r, payload=None, salt=None) if r is target else r for r in rows]
    parts, tail = _in_ranges(seen_by_workers, size, 4, None)
    lookup = {r["seq"]: (r["salt"], r["payload"]) for r in mine if r["payload"] is not None}.get
    options: dict[str, Any] = {"log_id": honest["log_id"], "recorded_size": size}
    joined = verify_rows([tail], honest["keys"], checked_ranges=parts, stored_payload=lookup, **options)
    assert joined == verify_rows([_as_tuples(mine)], honest["keys"], **options)
    assert joined.ok != edited and joined.first_bad_seq == (target["seq"] if edited else None)
