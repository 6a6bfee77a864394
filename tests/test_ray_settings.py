"""The compute settings and the checks made before any Ray work starts (no cluster needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipeline.compute.cluster import ClusterInfo, ComputeError, check_shared_databases, import_ray, in_flight
from pipeline.settings import ConfigError, load_settings


def cluster(*ips: str, cpus: float = 2.0) -> ClusterInfo:
    return ClusterInfo(tuple(f"node{i}" for i in range(len(ips))), ips, cpus, driver_ip=ips[0], driver_node="node0")


def test_the_engine_is_local_unless_set_and_a_bad_value_names_the_field(home: Path, monkeypatch: pytest.MonkeyPatch):
    assert load_settings().compute.engine == "local"
    monkeypatch.setenv("DOCKET_COMPUTE__ENGINE", "ray")
    monkeypatch.setenv("DOCKET_COMPUTE__ADDRESS", "10.0.0.1:6379")
    s = load_settings()
    assert (s.compute.engine, s.compute.address) == ("ray", "10.0.0.1:6379")
    monkeypatch.setenv("DOCKET_COMPUTE__ENGINE", "spark")
    with pytest.raises(ConfigError, match=r"field 'compute.engine'"):
        load_settings()


def test_the_engine_does_not_change_an_answers_config_hash(home: Path):
    # Where the work ran is not what it computed: the same hash, so records on either engine compare equal.
    assert load_settings().config_hash() == load_settings(compute={"engine": "ray", "actors": 3}).config_hash()
    assert load_settings().config_hash() != load_settings(retrieval={"top_k": 7}).config_hash()


def test_a_sqlite_workspace_is_refused_for_workers_on_other_hosts(home: Path):
    s = load_settings()
    check_shared_databases(s, cluster("10.0.0.1", "10.0.0.1"))  # one host: its SQLite file is theirs too
    with pytest.raises(ComputeError) as refused:
        check_shared_databases(s, cluster("10.0.0.1", "10.0.0.2", "10.0.0.3"))
    message = str(refused.value)
    assert message.startswith("registry_url is a SQLite file") and "10.0.0.2, 10.0.0.3" in message
    assert "PostgreSQL" in message and "\n" not in message
    assert isinstance(refused.value, ConfigError)  # so the CLI prints it as one line and exits 2
    shared = load_settings(registry_url="postgresql+psycopg://db/docket", audit_url="postgresql+psycopg://db/docket")
    check_shared_databases(shared, cluster("10.0.0.1", "10.0.0.2"))


def test_without_ray_installed_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an import of a missing package meets
    with pytest.raises(ComputeError, match=r"pip install 'docket\[ray\]'"):
        import_ray()


def test_work_in_flight_defaults_to_four_per_cpu(home: Path):
    assert in_flight(load_settings().compute, cluster("a", "b", cpus=3)) == 12
    assert in_flight(load_settings().compute, cluster("a", cpus=1), at_least=8) == 8
    assert in_flight(load_settings(compute={"max_in_flight": 5}).compute, cluster("a", cpus=64)) == 5


def test_a_worker_that_reads_other_bytes_than_the_driver_hashed_says_so(tmp_path: Path):
    from conftest import DRIVEN, SAMPLES
    from ingest.config import ChunkingSettings, EmbeddingSettings, IngestSettings, OcrSettings
    from pipeline.compute.ingest_tasks import PreparedText, TaskFailure, prepare_text

    args = (OcrSettings(), IngestSettings(), EmbeddingSettings(), ChunkingSettings(), 0)
    # The plain function a Ray task runs, run here: the driver hashed other bytes than this path holds.
    refused = prepare_text(SAMPLES / DRIVEN, "0" * 64, *args)
    assert isinstance(refused, TaskFailure)
    assert refused.error.startswith(f"{SAMPLES / DRIVEN}: the bytes read on node local are not those the driver hashed")
    assert "same files at the same paths" in refused.error
    # A file that cannot be ingested fails with the local engine's words, in one line.
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    failed = prepare_text(empty, "0" * 64, *args)
    assert isinstance(failed, TaskFailure) and "the file is empty (0 bytes)" in failed.error and "\n" not in failed.error
    # The right bytes: read and chunked (not encoded: the driver decides what is).
    from ingest.extract import sha256_file

    prepared = prepare_text(SAMPLES / DRIVEN, sha256_file(SAMPLES / DRIVEN)[0], *args)
    assert isinstance(prepared, PreparedText) and len(prepared.extracted.pages) == 7 and prepared.chunks


def test_snapshots_a_worker_meets_go_to_the_driver_which_appends_each_once(docket):
    """The worker's side and the driver's, in this process, on a real SQLite audit log: what `ask` would
    append on a worker is kept, brought back with each result naming it, and appended once, first."""
    from pipeline.compute.snapshots import DriverSnapshots, SnapshotLog, write_first
    from pipeline.replay.snapshots import (
        CORPUS_EVENT, SETTINGS_EVENT, CorpusSnapshot, CorpusVersion, SnapshotError, commit_snapshots, corpus_snapshot,
        settings_sha256,
    )

    s = docket.settings
    written = write_first(docket)
    assert len(written) == 2
    assert [e.event_type for e in docket.audit.entries()] == [SETTINGS_EVENT, CORPUS_EVENT]
    assert write_first(docket) == written and len(list(docket.audit.entries())) == 2  # once each

    # Two workers: the driver's corpus is found; a corpus committed since is kept, not written.
    later = CorpusSnapshot.of(7, [CorpusVersion(3, 2, 1, "ab" * 32, 40)])
    workers = [SnapshotLog(written), SnapshotLog(written)]
    for log in workers:
        commit_snapshots(log, s.actor, s, corpus_snapshot(docket.store), "r-old")
        assert log.kept == {}
        commit_snapshots(log, s.actor, s, later, "r-new")
        assert list(log.kept) == [f"corpus:{later.sha256}"]
        with pytest.raises(RuntimeError, match="records nothing"):
            log.append("answer", {}, actor=s.actor)
    old_names = {"settings_sha256": settings_sha256(s), "corpus": {"sha256": corpus_snapshot(docket.store).sha256}}
    assert workers[0].result("a", old_names).snapshots == []  # nothing the driver lacks
    new_names = {**old_names, "corpus": {"sha256": later.sha256}}
    results = [log.result(n, new_names) for n, log in enumerate(workers) for _ in range(2)]
    assert all(len(r.snapshots) == 1 for r in results)  # each result brings what it names

    driver = DriverSnapshots(docket, written)
    for result in results:
        driver.before(result.snapshots)
    corpus_entries = list(docket.audit.entries(event_type=CORPUS_EVENT))
    assert [e.payload["corpus_sha256"] for e in corpus_entries][-1] == later.sha256
    assert len(corpus_entries) == 2 and len(list(docket.audit.entries())) == 3  # one entry for four results
    assert DriverSnapshots(docket, written).before(results[0].snapshots) is None  # found in the log: not again
    assert len(list(docket.audit.entries())) == 3

    # A worker's snapshot whose content does not hash to its name is refused, and nothing is appended.
    forged = SnapshotLog(written)
    commit_snapshots(forged, s.actor, s, CorpusSnapshot.of(8, [CorpusVersion(4, 2, 2, "cd" * 32, 9)]), "r")
    (bad,) = forged.kept.values()
    bad.payload["versions"][0][4] = 10
    with pytest.raises(SnapshotError, match="does not hash to its name"):
        driver.before([bad])
    assert len(list(docket.audit.entries())) == 3


WITHOUT_RAY = """\
import sys
sys.modules["ray"] = None  # what an installation without the extra meets: `import ray` raises ImportError
from pipeline.cli import main
sys.argv = ["docket", *sys.argv[1:]]
try:
    main()
finally:
    assert sys.modules.get("ray") is None, "Ray was imported"
"""


@pytest.mark.slow
def test_without_ray_the_local_engine_works_and_engine_ray_is_one_line_before_anything_is_written(tmp_path: Path):
    import json
    import os
    import subprocess

    from conftest import DRIVEN, REPO, SAMPLES

    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKET_", "RAY_"))}
    env.update(DOCKET_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question": "Which law governs the agreement?"}\n', encoding="utf-8")

    def docket(*args: str, engine: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", WITHOUT_RAY, *args], env={**env, "DOCKET_COMPUTE__ENGINE": engine},
                              cwd=REPO, capture_output=True, text=True, timeout=600)

    for args in (["ingest", str(SAMPLES / DRIVEN), "-c", "deals"], ["ask", "--questions", str(questions), "-c", "deals"],
                 ["review", "run", "commercial-contract", "-c", "deals"]):
        refused = docket(*args, engine="ray")
        assert refused.returncode == 2, (args, refused.stderr)
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and "Ray is not installed here" in lines[0] and "pip install 'docket[ray]'" in lines[0]
        assert not home.exists(), f"{args[0]} wrote to the workspace before refusing"
    # The default engine needs no Ray: an ingest and a question batch run without it.
    assert docket("ingest", str(SAMPLES / DRIVEN), "-c", "deals", engine="local").returncode == 0
    batch = docket("ask", "--questions", str(questions), "-c", "deals", engine="local")
    assert batch.returncode in (0, 1), batch.stderr  # answered or withheld, but asked and logged
    (row,) = [json.loads(line) for line in batch.stdout.splitlines()]
    assert isinstance(row["audit_seq"], int) and row["audit_seq"] > 1 and batch.stderr.strip().endswith("[local]")
