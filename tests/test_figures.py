"""`--describe-figures`: charts on born-digital pages described by the vision model, each description
its own chunk with the figure's box. The PDF, PyMuPDF, chunking, encoder and store are real; the only
fake is the remote model (a local OpenAI-compatible server)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pymupdf
import pytest
from PIL import Image, ImageDraw
from typer.testing import CliRunner

from json_server import serve
from ingest.config import OcrSettings
from ingest.extract import read_document
from pipeline.app import Docket
from pipeline.cli import app
from pipeline.settings import load_settings

API_KEY = "sk-test-secret-0123456789"
MODEL = "magistral-small-2509"
DESCRIPTION = (
    'Bar chart titled "Revenue by quarter".\n\n'
    "| Quarter | Bar height |\n|---|---|\n| Q1 | 120 |\n| Q2 | 220 |\n| Q3 | 180 |\n| Q4 | 300 |"
)
PARAGRAPH = "Quarterly results. Revenue grew in every quarter of the year, as the chart below shows."
CHART_RECT = pymupdf.Rect(72, 300, 372, 500)  # 300 x 200 pt: 12% of the page
LOGO_RECT = pymupdf.Rect(540, 20, 570, 50)  # 0.2% of the page: a logo, not a figure
BAR_BLUE = (40, 90, 200)
# find_figures pads a figure by 8 pt so that titles and axis labels just outside it are sent too.
FIGURE_BOX = (64.0, 292.0, 380.0, 508.0)
DPI = 150


@dataclass
class FakeVisionServer:
    """Answers /v1/chat/completions with Magistral's list-shaped content; records every request."""

    status: int = 200
    requests: list[tuple[str, dict, dict]] = field(default_factory=list)
    url: str = ""

    def reply(self, path: str) -> dict:
        return {
            "id": "c1", "object": "chat.completion", "created": 0, "model": MODEL,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": [
                {"type": "thinking", "thinking": [{"type": "text", "text": "Four blue bars."}]},
                {"type": "text", "text": DESCRIPTION},
            ]}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }


@pytest.fixture
def server() -> Iterator[FakeVisionServer]:
    fake = FakeVisionServer()
    yield from serve(fake)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def chart_pdf(tmp_path: Path) -> Path:
    """A born-digital page: a paragraph on a shaded box, a rule, a small logo and a bar chart image."""
    chart = Image.new("RGB", (600, 400), "white")
    draw = ImageDraw.Draw(chart)
    draw.line((60, 20, 60, 350), fill="black", width=3)
    draw.line((60, 350, 580, 350), fill="black", width=3)
    for i, height in enumerate([120, 220, 180, 300]):
        draw.rectangle((100 + i * 120, 350 - height, 170 + i * 120, 350), fill=BAR_BLUE)
        draw.text((120 + i * 120, 360), f"Q{i + 1}", fill="black")
    draw.text((220, 5), "Revenue by quarter", fill="black")

    path = tmp_path / "results.pdf"
    document = pymupdf.open()
    page = document.new_page(width=612, height=792)
    # A shaded box behind text is text-layer material, not a figure.
    page.draw_rect(pymupdf.Rect(66, 66, 546, 150), color=None, fill=(0.9, 0.9, 0.9))
    page.insert_textbox(pymupdf.Rect(72, 72, 540, 150), PARAGRAPH, fontsize=11)
    page.draw_line((72, 60), (540, 60))
    page.insert_image(CHART_RECT, stream=_png(chart))
    page.insert_image(LOGO_RECT, stream=_png(Image.new("RGB", (40, 40), "red")))
    document.save(path)
    return path


@pytest.fixture
def vision_env(home: Path, server: FakeVisionServer, monkeypatch: pytest.MonkeyPatch) -> FakeVisionServer:
    monkeypatch.setenv("DOCKET_OCR__VISION_BASE_URL", server.url)
    monkeypatch.setenv("DOCKET_OCR__VISION_API_KEY", API_KEY)
    monkeypatch.setenv("DOCKET_OCR__DPI", str(DPI))
    return server


def _sent_image(body: dict) -> Image.Image:
    prefix = "data:image/png;base64,"
    data_url = body["messages"][0]["content"][1]["image_url"]
    assert data_url.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(data_url[len(prefix):])))


def _chunks(collection: str) -> list:
    store = Docket(load_settings()).store
    return sorted((store.chunk(i) for i in store.live_chunk_ids(collection)), key=lambda c: c.char_start)


def test_each_figure_is_described_in_a_chunk_of_its_own(vision_env: FakeVisionServer, chart_pdf: Path):
    runner = CliRunner()
    out = runner.invoke(app, ["ingest", str(chart_pdf), "--describe-figures", "--json"])
    assert out.exit_code == 0, out.output

    # One request: the chart; not the logo, the rule or the shaded text box.
    [(path, headers, body)] = vision_env.requests
    assert path == "/v1/chat/completions" and headers["authorization"] == f"Bearer {API_KEY}"
    prompt = body["messages"][0]["content"][0]["text"]
    assert "Never estimate, invent" in prompt and "not instructions" in prompt
    image = _sent_image(body)
    # The figure's region, rendered in colour at ocr.dpi: its bars are there.
    expected_size = [round((FIGURE_BOX[2 + i] - FIGURE_BOX[i]) * DPI / 72) for i in (0, 1)]
    assert all(abs(sent - want) <= 1 for sent, want in zip(image.size, expected_size))
    assert any(abs(r - BAR_BLUE[0]) + abs(g - BAR_BLUE[1]) + abs(b - BAR_BLUE[2]) < 30
               for _, (r, g, b) in image.convert("RGB").getcolors(1 << 20))

    text_chunk, figure_chunk = _chunks("default")
    assert (text_chunk.method, text_chunk.text) == ("pymupdf", PARAGRAPH)
    assert figure_chunk.method == "magistral-vision" and figure_chunk.confidence is None
    assert figure_chunk.text == f"[Figure 1 on page 1, described by {MODEL}: {DESCRIPTION}]"
    assert [tuple(box) for box in figure_chunk.boxes] == [FIGURE_BOX]

    shown = json.loads(runner.invoke(app, ["docs", "show", chart_pdf.name, "--pages", "--json"]).stdout)
    [page] = shown["page_details"]
    assert page["reader"] == "pymupdf"
    for chunk in (text_chunk, figure_chunk):
        assert page["text"][chunk.char_start:chunk.char_end] == chunk.text


def test_without_the_flag_no_request_is_made(vision_env: FakeVisionServer, chart_pdf: Path):
    out = CliRunner().invoke(app, ["ingest", str(chart_pdf), "--json"])
    assert out.exit_code == 0, out.output
    assert vision_env.requests == []
    assert [c.method for c in _chunks("default")] == ["pymupdf"]


def test_a_failed_description_keeps_the_page_and_notes_it(server: FakeVisionServer, chart_pdf: Path):
    server.status = 500
    settings = OcrSettings(vision_base_url=server.url, vision_api_key=API_KEY, dpi=DPI, describe_figures=True)
    [page] = read_document(chart_pdf, settings).pages
    [plain] = read_document(chart_pdf, OcrSettings()).pages
    assert (page.text, page.spans, page.method) == (plain.text, plain.spans, "pymupdf")
    assert page.notes == [
        f"figure 1 at {FIGURE_BOX}: magistral-vision failed (InternalServerError (HTTP 500)); not described"
    ]
    assert len(server.requests) == 2  # one retry, then the page goes on without the description
