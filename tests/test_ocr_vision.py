"""The model readers against a local fake OpenAI-compatible server (the only fake allowed: the
remote model). Page images are real; the Tesseract fallback is real."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from json_server import serve
from ingest.config import OcrSettings
from ingest.ocr import read_image_file
from ingest.ocr.wordbag import bag_of_words_f1

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "scans"
SCAN_PNG = SAMPLES / "consulting_agreement_p1.png"
GOLD = (SAMPLES / "consulting_agreement_p1.txt").read_text()
API_KEY = "sk-test-secret-0123456789"
TRANSCRIPT = "| Party | Role |\n|---|---|\n| Driven Deliveries, Inc. | Company |"


@dataclass
class FakeModelServer:
    """Answers /v1/chat/completions (Magistral's list-shaped content) and /v1/ocr; records requests."""

    status: int = 200
    requests: list[tuple[str, dict, dict]] = field(default_factory=list)
    url: str = ""
    ocr_page: dict | None = None  # a whole /v1/ocr page to answer with instead of the plain transcript

    def reply(self, path: str) -> dict:
        if path.endswith("/ocr"):
            page = self.ocr_page or {"index": 0, "markdown": TRANSCRIPT, "images": []}
            return {"model": "mistral-ocr-2505", "pages": [page]}
        return {
            "id": "c1", "object": "chat.completion", "created": 0, "model": "magistral-small-2509",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": [
                {"type": "thinking", "thinking": [{"type": "text", "text": "The page shows a table."}]},
                {"type": "text", "text": TRANSCRIPT},
            ]}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }


@pytest.fixture
def server() -> Iterator[FakeModelServer]:
    fake = FakeModelServer()
    yield from serve(fake)


def _settings(server: FakeModelServer, reader: str) -> OcrSettings:
    return OcrSettings(reader=reader, vision_base_url=server.url, vision_api_key=API_KEY, workers=1)


def _sent_png(data_url: str) -> bytes:
    prefix = "data:image/png;base64,"
    assert data_url.startswith(prefix)
    return base64.b64decode(data_url[len(prefix):])


def test_magistral_vision_reads_the_page_as_markdown(server):
    [page] = read_image_file(SCAN_PNG, _settings(server, "magistral-vision"))
    assert (page.text, page.method, page.confidence) == (TRANSCRIPT, "magistral-vision", None)
    assert page.engine_version == "magistral-small-2509"
    assert page.spans[0].box == (0.0, 0.0, page.width, page.height)
    [(path, headers, body)] = server.requests
    assert path == "/v1/chat/completions" and headers["authorization"] == f"Bearer {API_KEY}"
    prompt, image = body["messages"][0]["content"]
    assert "Markdown" in prompt["text"] and "Never invent" in prompt["text"]
    assert _sent_png(image["image_url"]).startswith(b"\x89PNG")


def test_mistral_ocr_posts_the_page_to_the_ocr_endpoint(server):
    [page] = read_image_file(SCAN_PNG, _settings(server, "mistral-ocr"))
    assert (page.text, page.method, page.engine_version, page.confidence) == (
        TRANSCRIPT, "mistral-ocr", "mistral-ocr-2505", None)
    [(path, _, body)] = server.requests
    assert path == "/v1/ocr" and body["model"] == "mistral-ocr-latest"
    assert body["document"]["type"] == "image_url"
    assert _sent_png(body["document"]["image_url"]).startswith(b"\x89PNG")


def test_mistral_ocr_image_boxes_become_spans_in_page_points(server):
    from PIL import Image

    width, height = Image.open(SCAN_PNG).size
    markdown = "Signed by the parties.\n\n![img-0.jpeg](img-0.jpeg)\n\nWitness."
    # Mistral reports boxes in the pixels of the image it was sent; here it says it saw half the size.
    server.ocr_page = {
        "index": 0, "markdown": markdown, "dimensions": {"dpi": 75, "width": width // 2, "height": height // 2},
        "images": [{"id": "img-0.jpeg", "top_left_x": 10, "top_left_y": 20, "bottom_right_x": 60, "bottom_right_y": 80}],
    }
    [page] = read_image_file(SCAN_PNG, _settings(server, "mistral-ocr"))
    image_span = next(s for s in page.spans if page.text[s.start:s.end] == "![img-0.jpeg](img-0.jpeg)")
    scale = 72.0 / page.dpi * 2  # half-size pixels -> full-size pixels -> points
    assert image_span.box == pytest.approx((10 * scale, 20 * scale, 60 * scale, 80 * scale), abs=0.1)  # odd sizes halve unevenly


@pytest.mark.slow
@pytest.mark.parametrize("reader", ["magistral-vision", "mistral-ocr"])
def test_model_failure_falls_back_to_tesseract_and_says_so(server, reader):
    server.status = 500
    [page] = read_image_file(SCAN_PNG, _settings(server, reader))
    assert page.method == "tesseract" and page.confidence is not None
    assert bag_of_words_f1(GOLD, page.text) >= 0.95
    assert f"{reader} failed (InternalServerError (HTTP 500)); fell back to tesseract" in page.notes
    assert API_KEY not in " ".join(page.notes)
    assert len(server.requests) == 2  # one retry, then the fallback


def test_api_key_falls_back_to_the_environment(server, monkeypatch):
    monkeypatch.setenv("DOCKET_LLM_API_KEY", "sk-from-env")
    settings = OcrSettings(reader="mistral-ocr", vision_base_url=server.url, workers=1)
    read_image_file(SCAN_PNG, settings)
    assert server.requests[0][1]["authorization"] == "Bearer sk-from-env"
