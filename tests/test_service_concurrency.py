"""Asks while an upload is ingested: the FAISS index a search reads is never changed under it.

An upload's ingest job (POST /documents) adds the new chunks to the index that concurrent asks are
searching. The store changes a copy and swaps it in (``IndexCache.update``, ingest/index_cache.py), so a search
holding the old index reads a whole one. Checked on the store itself, and through a real
`docket serve` with readers asking while an admin's uploads are ingested.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from fake_llm import FakeLLM, mistral_2509
from service_server import COLLECTION, add_users, copy_workspace, ingested_template, start_server

QUESTION = "How much notice ends the consulting agreement?"


def pdf_with(path: Path, text: str) -> Path:
    import pymupdf

    doc = pymupdf.open()
    doc.new_page().insert_textbox(pymupdf.Rect(50, 50, 545, 790), text, fontsize=11)
    doc.save(path)
    return path


def agreement_text(word: str) -> str:
    return (f"SERVICES AGREEMENT {word.upper()}. This agreement between {word.capitalize()} Holdings and the "
            f"Consultant may be ended by either party on forty-five days' written notice. The {word} fee is "
            "payable monthly in arrears. This agreement is governed by the laws of the State of Ohio.")


def test_an_ingest_publishes_a_new_index_and_leaves_the_one_a_search_holds_unchanged(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from pipeline.app import Docket
    from pipeline.settings import load_settings

    home = copy_workspace(ingested_template(tmp_path_factory.getbasetemp()), tmp_path / "home")
    store = Docket(load_settings(home=home)).store
    query = store.encoder.encode_query(QUESTION)
    held = {}

    def after_each_file(result) -> None:  # between the two files: what a search would hold as the second goes in
        if not held:
            index = store.vectors()
            held.update(index=index, count=index.count, top=index.search(query, 5), ids=index.search(query, index.count))

    files = [pdf_with(tmp_path / f"{word}.pdf", agreement_text(word)) for word in ("zephyr", "quillon")]
    report = store.ingest(files, COLLECTION, on_file=after_each_file)
    assert report.count("added") == 2, report.results

    index, published = held["index"], store.vectors()
    assert published is not index and published.generation == index.generation + 1
    # The index held across the second file's update is as it was: its vectors, its answer to the same query.
    assert index.count == held["count"] and index.search(query, 5) == held["top"]
    added = store.live_chunk_ids(COLLECTION, [report.results[1].document_id])
    assert added and published.count == held["count"] + len(added)
    new_ids = {cid for cid, _ in published.search(query, published.count)} - {cid for cid, _ in held["ids"]}
    assert new_ids == set(added)
    np.testing.assert_array_equal(published.vectors(added)[added[0]], stored_vector(store, added[0]))


def stored_vector(store, chunk_id: int) -> np.ndarray:
    """The chunk's vector as the registry stores it (what the published index must hold)."""
    from ingest.registry import ChunkRow

    with store.sessions() as session:
        blob = session.get(ChunkRow, chunk_id).embedding
    return np.frombuffer(blob, dtype=np.float32)


class AlwaysAnswers(FakeLLM):
    def _next(self, path: str):
        return mistral_2509("The notice clause is in S1.", "The agreement ends on notice as set out in S1 [S1].")


@pytest.fixture
def fake():
    server = AlwaysAnswers()
    server.start()
    yield server
    server.stop()


def test_asks_while_uploads_are_ingested_all_answer_and_the_log_stays_whole(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, fake
) -> None:
    home = copy_workspace(ingested_template(tmp_path_factory.getbasetemp()), tmp_path / "home")
    tokens = add_users(home)
    server = start_server(
        home, tmp_path / "serve.log", DOCKET_REASONER="magistral", DOCKET_LLM__PROVIDER="openai-compatible",
        DOCKET_LLM__BASE_URL=fake.base_url, DOCKET_LLM__MAX_RETRIES="0", DOCKET_LLM__TIMEOUT_S="60",
        DOCKET_SERVICE__RATE_LIMIT_PER_MINUTE="100000",
    )
    server.tokens = tokens
    uploads = [f"zephyr-{uuid.uuid4().hex[:6]}-{n}.pdf" for n in range(4)]
    done = threading.Event()
    problems: list[str] = []
    seqs: list[int] = []
    lock = threading.Lock()

    def reader_loop(n: int) -> int:
        asked = 0
        with server.client("reader") as reader:
            while not done.is_set() or asked == 0:
                response = reader.post("/ask", json={"question": f"{QUESTION} ({n}.{asked})", "collection": COLLECTION})
                asked += 1
                with lock:
                    if response.status_code != 200:
                        problems.append(f"{response.status_code}: {response.text[:300]}")
                        continue
                    record = response.json()
                    if record["status"] == "error" or record["error"]:
                        problems.append(f"error record: {record['error']}")
                    seqs.append(record["audit_seq"])
        return asked

    try:
        with ThreadPoolExecutor(4) as pool:
            readers = [pool.submit(reader_loop, n) for n in range(4)]
            try:
                with server.client("admin") as admin:
                    for name in uploads:
                        source = pdf_with(tmp_path / name, agreement_text(name.split("-")[1]))
                        started = admin.post("/documents", files={"file": (name, source.read_bytes(), "application/pdf")},
                                             data={"collection": COLLECTION})
                        assert started.status_code == 202, started.text
                        job_id, deadline = started.json()["job"]["id"], time.monotonic() + 300
                        while (job := admin.get(f"/jobs/{job_id}").json())["status"] not in ("done", "failed"):
                            assert time.monotonic() < deadline, f"job {job_id} did not finish"
                            time.sleep(0.2)
                        assert job["status"] == "done", job
            finally:
                done.set()
            asked = sum(r.result() for r in readers)
        assert not problems, problems[:5]
        assert asked >= 8 and len(seqs) == asked and len(set(seqs)) == asked  # one entry per ask
        assert server.alive(), server.log()
        with server.client("reader") as reader:
            for name in uploads:  # each upload is searchable: the index the asks read was updated, not lost
                record = reader.post("/ask", json={"question": "What notice ends the services agreement?",
                                                   "collection": COLLECTION, "documents": [name]}).json()
                assert record["evidence"] and {e["doc_name"] for e in record["evidence"]} == {name}, record
        with server.client("auditor") as auditor:
            assert auditor.get("/audit/verify").json()["ok"] is True
        assert "Traceback" not in server.log(), server.log()[-3000:]
    finally:
        server.stop()
