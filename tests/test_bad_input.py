"""Bad input: one clear line naming the file and the reason, the rest of the batch ingested, nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pymupdf
import pytest
from sqlalchemy import func, select

from conftest import NETGEAR, SAMPLES
from ingest.registry import ChunkRow, DocumentVersion
from ingest.store import DocumentStore

MINIMAL_ZERO_PAGE_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def _encrypted(path: Path) -> None:
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "Confidential settlement terms.")
    doc.save(path, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="secret", owner_pw="owner")


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "not_pdf": tmp_path / "notes.pdf",
        "corrupt": tmp_path / "corrupt.pdf",
        "encrypted": tmp_path / "encrypted.pdf",
        "empty": tmp_path / "empty.pdf",
        "zero_pages": tmp_path / "zero.pdf",
        "missing": tmp_path / "missing.pdf",
    }
    files["not_pdf"].write_text("Meeting notes, not a PDF at all.\n")
    files["corrupt"].write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 40)
    _encrypted(files["encrypted"])
    files["empty"].write_bytes(b"")
    files["zero_pages"].write_bytes(MINIMAL_ZERO_PAGE_PDF)
    return files


EXPECTED_REASON = {
    "not_pdf": "not a PDF",
    "corrupt": "corrupt",
    "encrypted": "encrypted",
    "empty": "empty",
    "zero_pages": "no pages",
    "missing": "no such file",
}


def test_each_bad_file_fails_alone_with_one_clear_line(home: Path, bad_files: dict[str, Path]):
    store = DocumentStore(f"sqlite:///{home / 'registry.db'}", home / "index")
    report = store.ingest([SAMPLES / NETGEAR, *bad_files.values()])
    by_path = {r.path: r for r in report.results}
    assert by_path[str(SAMPLES / NETGEAR)].outcome == "added"
    for key, path in bad_files.items():
        result = by_path[str(path)]
        assert result.outcome == "failed", key
        assert str(path) in result.error and EXPECTED_REASON[key] in result.error, result.error
        assert "\n" not in result.error and "Traceback" not in result.error
    with store.sessions() as session:  # only the good file left rows behind
        assert session.execute(select(func.count(DocumentVersion.id))).scalar_one() == 1
        assert session.execute(select(func.count(ChunkRow.id))).scalar_one() == store.vectors().count


def test_cli_reports_failures_and_exits_non_zero(home: Path, bad_files: dict[str, Path]):
    from typer.testing import CliRunner

    from pipeline.cli import app

    result = CliRunner().invoke(app, ["ingest", str(SAMPLES / NETGEAR), str(bad_files["encrypted"]), str(bad_files["not_pdf"])])
    assert result.exit_code == 1, result.output
    assert "1 added" in result.output and "2 failed" in result.output
    assert f"{bad_files['encrypted']}: the PDF is encrypted" in result.output
    assert "Traceback" not in result.output


def test_asking_with_nothing_ingested_is_a_clear_error_and_is_logged(home: Path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["ask", "Who are the parties?"])
    assert result.exit_code == 1
    assert "No documents are ingested" in result.output and "docket ingest" in result.output
    assert "Traceback" not in result.output
    listed = runner.invoke(app, ["audit", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert '"error"' in listed.output


def test_a_bad_config_value_names_the_field(home: Path, tmp_path: Path):
    import subprocess
    import sys

    config = tmp_path / "bad.yaml"
    config.write_text("retrieval:\n  top_k: zero\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--config", str(config), "config", "show"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "retrieval.top_k" in proc.stderr and str(config) in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow  # a subprocess that loads the encoder
def test_ctrl_c_during_ingest_exits_130_with_a_message_and_a_usable_workspace(tmp_path: Path):
    """Ctrl-C is SIGINT to the process: it must stop with exit code 130 and say what it left behind
    (typer turns KeyboardInterrupt into exit 130 before Docket's own handler sees it), and the
    workspace must still open and list what was committed."""
    import os
    import signal
    import subprocess
    import sys
    import time

    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKET_")} | {"HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "pipeline.cli", "--home", str(home)]
    child = subprocess.Popen([*command, "ingest", str(SAMPLES)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (home / "registry.db").exists() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)  # the workspace exists: the command is under way
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr[-2000:]
    listed = subprocess.run([*command, "docs", "list", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr[-2000:]
