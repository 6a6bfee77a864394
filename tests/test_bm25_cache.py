"""The BM25 index saved beside FAISS: a new process loads it instead of re-tokenising every chunk, its
scores are the freshly built index's to the bit, and a saved copy of other chunks is never used."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DRIVEN, NETGEAR, REPO, SAMPLES
from ingest import lexical
from ingest.lexical import LexicalIndex, tokenize
from ingest.store import DocumentStore, lexical_recipe

QUERIES = [
    "Which state's law governs the distributor agreement?",
    "How much notice must a party give to terminate the consulting agreement without cause?",
    "renewal term of the strategic alliance agreement",
    {"terminat": 1.0, "notic": 0.5, "agreement": 0.25},  # weighted terms, as ingest.query makes them
    "本契約は日本法に準拠する",  # no term in the index
]


def open_store(home: Path) -> DocumentStore:
    return DocumentStore(f"sqlite:///{home / 'registry.db'}", home / "index")


def saved_files(home: Path) -> list[Path]:
    return [home / "index" / lexical.INDEX_FILE, home / "index" / lexical.MANIFEST_FILE]


def assert_same_scores(a: LexicalIndex, b: LexicalIndex, allowed: list[int] | None = None) -> None:
    assert a.ids == b.ids
    for query in QUERIES:
        sa, sb = a.scores(query, allowed), b.scores(query, allowed)
        if sa is None or sb is None:
            assert sa is None and sb is None, query
            continue
        assert sa.dtype == sb.dtype == np.float32
        assert np.array_equal(sa, sb), query  # bit for bit, not approximately
        assert a.top(sa, 10) == b.top(sb, 10)


def fresh_index(home: Path) -> LexicalIndex:
    """The index built from the registry now, with no saved copy to load."""
    for path in saved_files(home):
        path.unlink(missing_ok=True)
    return open_store(home).lexical()


def test_numpy_scoring_equals_bm25s() -> None:
    """The arrays scored with numpy give bm25s's own get_scores_from_ids, term by term and masked."""
    import bm25s

    texts = [p.read_text() for p in sorted((REPO / "docs").glob("*.md"))][:8]
    ids = list(range(100, 100 + len(texts)))
    index = LexicalIndex.build(ids, texts)
    reference = bm25s.BM25()
    reference.index([tokenize(t) or ["\u2205"] for t in texts], show_progress=False)
    mask = np.isin(np.asarray(ids), [101, 103, 104]).astype(np.float32)
    weights = {"index": 1.0, "audit": 0.5, "bm25": 2.0, "the": 1.0}
    expected = np.zeros(len(ids), dtype=np.float32)
    for term, weight in weights.items():
        if term in reference.vocab_dict:
            expected += weight * reference.get_scores_from_ids([reference.vocab_dict[term]], weight_mask=mask)
    assert expected.any()
    assert np.array_equal(index.scores(weights, [101, 103, 104]), expected)


def test_saved_index_loads_with_the_same_scores(samples_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = open_store(samples_copy)
    built = store.lexical()  # no saved copy yet: built from the registry, then saved
    assert all(p.is_file() for p in saved_files(samples_copy))
    mtimes = [p.stat().st_mtime_ns for p in saved_files(samples_copy)]

    caplog.set_level(logging.INFO, logger="ingest.index_cache")
    loaded = open_store(samples_copy).lexical()  # a new process's store
    assert "rebuilding the BM25 index" not in caplog.text
    assert [p.stat().st_mtime_ns for p in saved_files(samples_copy)] == mtimes  # read, not rewritten
    assert loaded.ids == store.live_chunk_ids()
    assert_same_scores(built, loaded)
    assert_same_scores(built, loaded, allowed=loaded.ids[::3])
    # and the store's searches rank alike
    fresh_store, loaded_store = store, open_store(samples_copy)
    for mode in ("bm25", "hybrid"):
        for question in QUERIES[:3]:
            assert [(h.chunk_id, h.score) for h in fresh_store.search(question, 8, mode=mode)] == [
                (h.chunk_id, h.score) for h in loaded_store.search(question, 8, mode=mode)
            ]


def test_ingest_and_remove_make_the_saved_copy_stale(samples_copy: Path, tmp_path: Path) -> None:
    store = open_store(samples_copy)
    before = store.lexical()
    generation = store.generation()
    assert json.loads(saved_files(samples_copy)[1].read_text())["generation"] == generation

    # A new document (another collection, so its bytes are new there): the generation moves on.
    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.copy(SAMPLES / DRIVEN, extra / DRIVEN)
    assert store.ingest([extra], "other").count("added") == 1
    after_ingest = open_store(samples_copy)
    assert after_ingest.generation() > generation
    index = after_ingest.lexical()
    assert len(index.ids) > len(before.ids)
    assert index.ids == after_ingest.live_chunk_ids()  # the new chunks are in it: the old copy was not used
    assert json.loads(saved_files(samples_copy)[1].read_text())["generation"] == after_ingest.generation()
    assert_same_scores(index, fresh_index(samples_copy))
    count_before_removal = len(index.ids)

    # Removing a document: its chunks leave the index in the next process too.
    removed = open_store(samples_copy).remove(NETGEAR, "samples")
    after_remove = open_store(samples_copy)
    index = after_remove.lexical()
    assert index.ids == after_remove.live_chunk_ids()
    assert len(index.ids) < count_before_removal
    top = index.top(index.scores(QUERIES[0]), 20)
    assert top and removed.name not in {h.doc_name for h in after_remove.search(QUERIES[0], 20, mode="bm25")}
    assert_same_scores(index, fresh_index(samples_copy))


def test_a_saved_copy_that_does_not_match_is_rebuilt(samples_copy: Path) -> None:
    store = open_store(samples_copy)
    index = store.lexical()
    directory, generation, recipe = samples_copy / "index", store.generation(), lexical_recipe()
    assert LexicalIndex.load(directory, generation, recipe) is not None
    assert LexicalIndex.load(directory, generation + 1, recipe) is None  # another generation
    assert LexicalIndex.load(directory, generation, recipe + "x") is None  # texts made another way

    manifest_path = saved_files(samples_copy)[1]
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "tokenizer_sha256": "0" * 64}))
    assert LexicalIndex.load(directory, generation, recipe) is None  # tokenised by other code
    manifest_path.write_text(json.dumps(manifest))

    blob = bytearray(saved_files(samples_copy)[0].read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    saved_files(samples_copy)[0].write_bytes(bytes(blob))
    assert LexicalIndex.load(directory, generation, recipe) is None  # checksum
    rebuilt = open_store(samples_copy).lexical()
    assert_same_scores(index, rebuilt)
    assert LexicalIndex.load(directory, generation, recipe) is not None  # saved again, whole

    manifest_path.write_text("{not json")
    assert LexicalIndex.load(directory, generation, recipe) is None


def test_asking_with_a_saved_index_imports_neither_bm25s_nor_scipy(samples_copy: Path) -> None:
    open_store(samples_copy).lexical()  # saved
    script = (
        "import sys\n"
        "from ingest.store import DocumentStore\n"
        f"home = {str(samples_copy)!r}\n"
        "store = DocumentStore(f'sqlite:///{home}/registry.db', f'{home}/index')\n"
        "hits = store.search(\"Which state's law governs the distributor agreement?\", 5, mode='hybrid')\n"
        "assert hits, 'no hits'\n"
        "print(sorted(m for m in ('bm25s', 'scipy', 'scipy.sparse') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
