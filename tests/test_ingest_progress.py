"""Ingest reports how far the current document is (ingest.progress), for the service's upload jobs."""

from __future__ import annotations

import shutil
from pathlib import Path

from ingest import progress

REPO = Path(__file__).resolve().parent.parent
CONTRACT = REPO / "samples" / "contracts" / "DRIVENDELIVERIES_INC_05_22_2020-EX-10.4-CONSULTING_AGREEMENT.pdf"
SCAN = REPO / "samples" / "scans" / "consulting_agreement_scan.pdf"


def _steps(docket, path: Path) -> list[tuple[str, int, int]]:
    heard: list[tuple[str, int, int]] = []
    with progress.listening(lambda step, done, total: heard.append((step, done, total))):
        report = docket.store.ingest([path], "progress")
    assert report.results[0].outcome == "added", report.results
    return heard


def test_every_page_then_the_embedding_then_the_commit_is_reported(docket, tmp_path: Path) -> None:
    import pymupdf

    pages = pymupdf.open(CONTRACT).page_count
    heard = _steps(docket, CONTRACT)
    reading = [h for h in heard if h[0] == "reading pages"]
    assert reading == [("reading pages", i, pages) for i in range(pages)]
    embedding = [h for h in heard if h[0] == "embedding"]
    assert embedding and all(total == embedding[0][2] > 0 for _, _, total in embedding)
    assert [d for _, d, _ in embedding] == sorted(d for _, d, _ in embedding)
    assert heard[-1][0] == "storing" and heard.index(reading[-1]) < heard.index(embedding[0])


def test_ocr_pages_are_reported_and_nothing_is_heard_outside_the_block(docket, tmp_path: Path) -> None:
    heard = _steps(docket, SCAN)
    ocr = [h for h in heard if h[0] == "OCR"]
    assert ocr and ocr[0][1] == 0 and ocr[0][2] >= 1  # announced before the first page is read
    assert all(total == ocr[0][2] for _, _, total in ocr) and [d for _, d, _ in ocr] == sorted(d for _, d, _ in ocr)
    # Outside `listening` the reports go nowhere: a second copy ingests with nobody told.
    copy = tmp_path / "copy.pdf"
    shutil.copyfile(CONTRACT, copy)
    before = list(heard)
    assert docket.store.ingest([copy], "progress").results[0].outcome == "added"
    assert heard == before


def test_the_upload_job_stage_says_which_page_or_passage() -> None:
    from pipeline.service.routes.documents import show_progress
    from pipeline.service.state import Job

    job = Job(id="j", kind="ingest", owner="admin")
    show_progress(job, "reading pages", 2, 7)
    assert job.stage == "reading page 3 of 7"
    show_progress(job, "embedding", 64, 120)
    assert job.stage == "embedding: 64 of 120 passages done"
    show_progress(job, "storing", 120, 120)
    assert job.stage == "storing"
