"""A removed document's chunks are never evidence again, although the ask keeps, per index generation,
whether a filter has live chunks: a removal in another workspace on the same registry (a colleague, another
service process) bumps the generation this one reads. Real ingest, encoder and search, on a SQLite file and
on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import DRIVEN, NETGEAR, SAMPLES
from pipeline.app import Docket
from pipeline.ask import AskOptions, ask
from pipeline.settings import load_settings
from test_audit_support import db_url  # noqa: F401 (the fixture: a SQLite file, then a PostgreSQL schema)

QUESTION = "How much notice ends the consulting agreement?"


def test_a_document_removed_elsewhere_is_no_evidence_on_the_next_ask(home: Path, db_url: str, tmp_path: Path) -> None:  # noqa: F811
    serving = Docket(load_settings(registry_url=db_url, audit_url=db_url))
    assert serving.store.ingest([SAMPLES / NETGEAR, SAMPLES / DRIVEN], "shared").count("added") == 2
    driven = serving.store.resolve(DRIVEN, "shared").id

    on_it = AskOptions(collection="shared", documents=[DRIVEN])
    before = [ask(serving, QUESTION, on_it) for _ in range(2)]  # the second from what the first kept
    assert all(r.status != "error" and {e.document_id for e in r.evidence} == {driven} for r in before), before
    assert driven in {e.document_id for e in ask(serving, QUESTION, AskOptions(collection="shared")).evidence}

    colleague = Docket(load_settings(registry_url=db_url, audit_url=db_url, actor="colleague", home=tmp_path / "other"))
    colleague.store.remove(DRIVEN, "shared")

    after = ask(serving, QUESTION, on_it)
    assert after.status == "error" and not after.evidence, after
    assert after.error.startswith("No documents are ingested for the given --doc"), after.error
    assert after.retrieval.index_generation == before[0].retrieval.index_generation + 1
    anywhere = ask(serving, QUESTION, AskOptions(collection="shared"))
    assert anywhere.evidence and driven not in {e.document_id for e in anywhere.evidence}, anywhere.evidence
