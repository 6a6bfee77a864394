"""The Tesseract reader: the `tesseract` CLI with TSV output, word boxes and confidences kept.

The CLI (not a binding) keeps dependencies to what Debian installs; one process per call also makes a
crash in Tesseract an error for one page instead of the whole ingest.
"""

from __future__ import annotations

import csv
import functools
import io
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from PIL import Image

from ingest.models import IngestError

# Pages run in parallel across processes; Tesseract's own OpenMP threads would only fight over the
# same cores (several times slower on 2 cores when tried), so each call is single-threaded.
_ENV = {**os.environ, "OMP_THREAD_LIMIT": "1"}
_TIMEOUT_S = 300


@dataclass(frozen=True)
class OcrWord:
    """One word Tesseract read: text, box in image pixels (x0, y0, x1, y1), confidence 0..1."""

    text: str
    box: tuple[int, int, int, int]
    confidence: float
    block: int
    paragraph: int
    line: int


def _binary() -> str:
    path = shutil.which("tesseract")
    if path is None:
        raise IngestError(
            "tesseract", "the tesseract program is not installed",
            "run scripts/install-system-deps.sh or `apt-get install tesseract-ocr`",
        )
    return path


@functools.cache
def tesseract_version() -> str:
    """'tesseract 5.3.0' as the CLI reports it; recorded on every page it reads."""
    out = subprocess.run([_binary(), "--version"], capture_output=True, text=True, check=False)
    first = (out.stdout or out.stderr).splitlines()[0].strip()
    return first


@functools.cache
def installed_languages() -> frozenset[str]:
    out = subprocess.run([_binary(), "--list-langs"], capture_output=True, text=True, check=False)
    # The first line is a header ("List of available languages in ...").
    return frozenset(line.strip() for line in out.stdout.splitlines()[1:] if line.strip())


def check_languages(languages: str, path: str) -> None:
    """Fail before any page is read when a configured language has no traineddata installed."""
    missing = [lang for lang in languages.split("+") if lang not in installed_languages()]
    if missing:
        packages = " ".join("tesseract-ocr-" + lang.lower().replace("_", "-") for lang in missing)
        raise IngestError(
            path, f"Tesseract language data not installed: {', '.join(missing)}",
            f"run `apt-get install {packages}` or change ocr.languages",
        )


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _run(args: list[str], image: Image.Image, dpi: int, path: str, page: int | None) -> str:
    # The true DPI matters: a wrong one misleads Tesseract's size heuristics (~90 dpi forms declared
    # as 300 dpi read worse).
    try:
        done = subprocess.run(
            [_binary(), "stdin", "stdout", "--dpi", str(dpi), *args],
            input=_png(image), capture_output=True, env=_ENV, timeout=_TIMEOUT_S, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise IngestError(path, f"Tesseract took longer than {_TIMEOUT_S} s", page=page) from exc
    if done.returncode != 0:
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        raise IngestError(path, f"Tesseract failed: {last}", page=page)
    return done.stdout.decode("utf-8", errors="replace")


def read_words(
    image: Image.Image, *, dpi: int, languages: str, psm: int, path: str, page: int | None
) -> list[OcrWord]:
    """Words with boxes and confidences, in Tesseract's reading order."""
    tsv = _run(["-l", languages, "--psm", str(psm), "tsv"], image, dpi, path, page)
    words = []
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        text = (row.get("text") or "").strip()
        if row.get("level") != "5" or not text:
            continue
        left, top, width, height = (int(row[k]) for k in ("left", "top", "width", "height"))
        words.append(OcrWord(
            text=text,
            box=(left, top, left + width, top + height),
            confidence=max(0.0, float(row["conf"])) / 100.0,
            block=int(row["block_num"]), paragraph=int(row["par_num"]), line=int(row["line_num"]),
        ))
    return words


_ROTATE = re.compile(r"^Rotate:\s*(\d+)", re.MULTILINE)
_ORIENTATION_CONF = re.compile(r"^Orientation confidence:\s*([\d.]+)", re.MULTILINE)
# Below this OSD confidence the orientation guess is noise. Measured on the synthetic CUAD scan:
# right answers came with 3.9-15, wrong ones (on downscaled pages) with 0.4-3.4.
_MIN_OSD_CONFIDENCE = 3.5


def detect_rotation(image: Image.Image, *, dpi: int, path: str, page: int | None) -> int:
    """Clockwise degrees (0/90/180/270) to rotate the image so text reads upright; 0 when unsure."""
    try:
        out = _run(["--psm", "0"], image, dpi, path, page)
    except IngestError:
        # OSD refuses pages with too few characters; such pages are read as they are.
        return 0
    rotate, confidence = _ROTATE.search(out), _ORIENTATION_CONF.search(out)
    if rotate is None or confidence is None or float(confidence.group(1)) < _MIN_OSD_CONFIDENCE:
        return 0
    return int(rotate.group(1)) % 360
