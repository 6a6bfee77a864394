"""The shared set-up of a firm: registry and audit log in PostgreSQL (configs/postgres.yaml), for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import DRIVEN, NETGEAR, SAMPLES
from pipeline.app import Docket
from pipeline.ask import AskOptions, ask
from pipeline.settings import load_settings
from test_audit_support import pg_schema_url

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url():
    yield from pg_schema_url()


def test_ingest_ask_and_verify_with_everything_in_postgres(home: Path, pg_url: str, tmp_path: Path):
    docket = Docket(load_settings("postgres", registry_url=pg_url, audit_url=pg_url))
    report = docket.store.ingest([SAMPLES / NETGEAR, SAMPLES / DRIVEN], "shared")
    assert report.count("added") == 2 and docket.store.ingest([SAMPLES / NETGEAR], "shared").count("unchanged") == 1

    record = ask(docket, "Which state's law governs the agreement?", AskOptions(collection="shared", documents=[NETGEAR]))
    assert record.status == "answered" and "California" in record.answer

    # A colleague on another machine (own workspace, so own FAISS index, rebuilt from the shared
    # registry's stored vectors) sees the same documents and appends to the same chain.
    colleague = Docket(
        load_settings("postgres", registry_url=pg_url, audit_url=pg_url, actor="colleague", home=tmp_path / "colleague")
    )
    assert sorted(d.name for d in colleague.store.documents("shared")) == sorted([NETGEAR, DRIVEN])
    # The colleague's own signing key is enrolled by a workspace whose key the log already knows.
    colleague_key, _ = colleague.audit.key_store().active()
    docket.audit.enrol_key(colleague.settings.keys_dir / f"{colleague_key}.pub", actor="test-analyst")
    second = ask(colleague, "How much notice ends the consulting agreement?", AskOptions(collection="shared", documents=[DRIVEN]))
    assert second.status == "answered" and "thirty (30) days" in second.answer
    assert second.audit_seq > record.audit_seq
    verified = colleague.audit.verify()
    assert verified.ok and verified.size >= 2
    assert docket.audit.verify().ok  # the first analyst's verify too: no false tamper alarm
    assert colleague.audit.get(second.audit_seq).actor == "colleague"
