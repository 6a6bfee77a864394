"""Review reports: JSON, CSV, Markdown and a self-contained HTML page, all from one ``Review``.

Rows are documents, columns checklist items. Every cell carries its verdict, confidence, the reason
for the verdict, the cited passages (page and quote), the grounding result, the trace, its audit
entry, and the reviewers' sign-offs on it.
"""

from __future__ import annotations

import csv
import html
import io
import json
from typing import Any

from pipeline.review.state import Cell, Review, ReviewDocument, SignOff
from pipeline.review.verdicts import VERDICT_LABELS

FORMATS = ("md", "html", "csv", "json")
VERDICT_COLOURS = {
    "compliant": "#1b873f",
    "non-compliant": "#c62828",
    "not-addressed": "#6b7280",
    "needs-review": "#b26a00",
}


def signoffs_for(review: Review, item_id: str | None, sha256: str | None) -> list[SignOff]:
    """Sign-offs that cover a cell: on the cell, its item, its document, or the whole review."""
    return [
        s for s in review.signoffs
        if (s.item_id in (None, item_id)) and (s.doc_sha256 in (None, sha256))
    ]


def grounding_words(grounding: dict | None) -> str:
    """What grounding checked, in the words `docket ask` prints (docs/reasoning.md); older findings
    without a label show their verdict."""
    grounding = grounding or {}
    return grounding.get("label") or grounding.get("verdict") or "n/a"


def reviewed_verdict(review: Review, cell: Cell) -> str:
    """The verdict after sign-off: the last override that names a verdict wins."""
    for s in reversed(signoffs_for(review, cell.item_id, cell.doc_sha256)):
        if s.decision == "override" and s.verdict:
            return s.verdict
    return cell.verdict


def summary(review: Review) -> dict[str, Any]:
    counts = {v: 0 for v in VERDICT_LABELS}
    for cell in review.cells.values():
        counts[cell.verdict] = counts.get(cell.verdict, 0) + 1
    return {
        "cells": len(review.cells),
        "expected_cells": len(review.expected_cells()),
        "verdicts": counts,
        "failed_cells": sum(c.failed for c in review.cells.values()),
        "failed_documents": [d.name for d in review.documents if d.status == "failed"],
        "complete": review.completed_at is not None,
    }


def to_json(review: Review) -> dict[str, Any]:
    return {
        "review": {
            "id": review.id,
            "checklist": {"name": review.checklist["name"], "title": review.checklist["title"],
                          "version": review.checklist["version"], "sha256": review.checklist_sha256},
            "collection": review.collection,
            "reasoner": review.reasoner,
            "model": review.model,
            "config_hash": review.config_hash,
            "index_generation": review.index_generation,
            "created_at": review.created_at,
            "created_by": review.created_by,
            "completed_at": review.completed_at,
            "started_seq": review.started_seq,
            "checkpoint": review.checkpoint,
        },
        "summary": summary(review),
        "items": review.checklist["items"],
        "documents": [d.__dict__ for d in review.documents],
        "cells": [
            {**cell.finding, "audit_seq": cell.audit_seq, "reviewed_verdict": reviewed_verdict(review, cell),
             "signoffs": [s.__dict__ for s in signoffs_for(review, cell.item_id, cell.doc_sha256)]}
            for cell in _ordered_cells(review)
        ],
        "signoffs": [s.__dict__ for s in review.signoffs],
    }


def to_csv(review: Review) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([
        "review_id", "document", "doc_sha256", "item_id", "item_title", "severity", "verdict", "reviewed_verdict",
        "confidence", "basis", "citations", "grounding", "audit_seq", "signoffs",
    ])
    for cell in _ordered_cells(review):
        f = cell.finding
        writer.writerow([
            review.id, f["document"]["name"], cell.doc_sha256, cell.item_id, f["item_title"], f["severity"],
            cell.verdict, reviewed_verdict(review, cell), f["confidence"], f["basis"],
            " | ".join(f"p.{c['page']}: {c['quote']}" for c in f.get("citations", [])),
            grounding_words(f.get("grounding")), cell.audit_seq,
            " | ".join(f"{s.decision} by {s.actor}: {s.note}" for s in signoffs_for(review, cell.item_id, cell.doc_sha256)),
        ])
    for doc in review.documents:
        if doc.status == "failed":
            writer.writerow([review.id, doc.name, doc.sha256 or "", "", "", "", "failed", "", "", doc.error,
                             "", "", "", ""])
    return out.getvalue()


def to_markdown(review: Review) -> str:
    items = review.checklist["items"]
    info = summary(review)
    lines = [
        f"# Review {review.id}: {review.checklist['title']}",
        "",
        f"- checklist: `{review.checklist['name']}` v{review.checklist['version']} (sha256 `{review.checklist_sha256[:16]}`)",
        f"- collection: `{review.collection}`; reasoner: {review.reasoner}" + (f" ({review.model})" if review.model else ""),
        f"- index generation {review.index_generation}; started {review.created_at} by {review.created_by}; "
        + (f"completed {review.completed_at}" if review.completed_at else "**not complete**"),
        f"- cells: {info['cells']} of {info['expected_cells']}; "
        + ", ".join(f"{VERDICT_LABELS[v]}: {n}" for v, n in info["verdicts"].items()),
    ]
    if review.checkpoint:
        lines.append(f"- signed checkpoint: log size {review.checkpoint['size']}, root `{review.checkpoint['root'][:16]}`")
    lines += ["", "| document | " + " | ".join(i["id"] for i in items) + " |", "|---|" + "---|" * len(items)]
    for doc, cells in _matrix(review):
        marks = [_md_mark(review, c) if c else "–" for c in cells]
        lines.append(f"| {_md(doc.name)} | " + " | ".join(marks) + " |")
    lines += ["", "Legend: ✔ compliant · ✘ non-compliant · ∅ not addressed · ? needs human review · – not applicable",
              "(a reviewer's override is shown as `original → reviewed`)"]
    failed = [d for d in review.documents if d.status == "failed"]
    if failed:
        lines += ["", "## Documents not reviewed", ""] + [f"- {_md(d.name)}: {_md(d.error or '')}" for d in failed]
    lines += ["", "## Findings"]
    for cell in _ordered_cells(review):
        f = cell.finding
        lines += [
            "",
            f"### {_md(f['document']['name'])} · {f['item_title']} ({f['severity']})",
            "",
            f"**{VERDICT_LABELS[cell.verdict]}** (confidence {f['confidence']}): {_md(f['basis'])}. "
            f"Audit entry #{cell.audit_seq}; grounding: {_md(grounding_words(f.get('grounding')))}.",
        ]
        if f.get("rationale"):
            lines += ["", "> " + _md(f["rationale"]).replace("\n", "\n> ")]
        for c in f.get("citations", []):
            lines.append(f"- [{c['label']}] page {c['page']}: “{_md(c['quote'])}”")
        for s in signoffs_for(review, cell.item_id, cell.doc_sha256):
            lines.append(f"- sign-off #{s.audit_seq}: **{s.decision}**"
                         + (f" → {VERDICT_LABELS[s.verdict]}" if s.verdict else "") + f" by {s.actor}: {_md(s.note)}")
    return "\n".join(lines) + "\n"


def to_html(review: Review) -> str:
    items = review.checklist["items"]
    info = summary(review)
    head = "".join(
        f'<th title="{_h(i["requirement"])}">{_h(i["id"])}<br><small>{_h(i["severity"])}</small></th>' for i in items
    )
    rows = []
    for doc, cells in _matrix(review):
        tds = "".join(_html_cell(review, c) if c else '<td class="na">–</td>' for c in cells)
        rows.append(f'<tr><th class="doc">{_h(doc.name)}<br><small>{_h((doc.sha256 or "")[:12])}</small></th>{tds}</tr>')
    failed = [d for d in review.documents if d.status == "failed"]
    failed_html = (
        "<h2>Documents not reviewed</h2><ul>"
        + "".join(f'<li class="failed-doc"><b>{_h(d.name)}</b>: {_h(d.error or "")}</li>' for d in failed)
        + "</ul>"
    ) if failed else ""
    review_signoffs = [s for s in review.signoffs if s.item_id is None and s.doc_sha256 is None]
    signoff_html = "".join(f"<li>{_signoff_text(s)}</li>" for s in review_signoffs)
    legend = " ".join(
        f'<span class="pill" style="background:{VERDICT_COLOURS[v]}">{_h(label)}</span>' for v, label in VERDICT_LABELS.items()
    )
    checkpoint = (
        f"signed checkpoint: log size {review.checkpoint['size']}, root <code>{_h(review.checkpoint['root'][:16])}</code>"
        if review.checkpoint else "<b>not complete</b>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Review {_h(review.id)}: {_h(review.checklist['title'])}</title>
<style>{_CSS}</style></head>
<body>
<h1>Review <code>{_h(review.id)}</code>: {_h(review.checklist['title'])}</h1>
<p class="meta">checklist <code>{_h(review.checklist['name'])}</code> v{_h(review.checklist['version'])}
(sha256 <code>{_h(review.checklist_sha256[:16])}</code>) · collection <code>{_h(review.collection)}</code> ·
reasoner {_h(review.reasoner)}{(' (' + _h(review.model) + ')') if review.model else ''} · index generation {review.index_generation}
· started {_h(review.created_at)} by {_h(review.created_by)} · {checkpoint}</p>
<p class="meta">{info['cells']} of {info['expected_cells']} cells · {legend}</p>
<table class="matrix"><thead><tr><th>document</th>{head}</tr></thead><tbody>
{''.join(rows)}
</tbody></table>
{failed_html}
{('<h2>Review sign-off</h2><ul>' + signoff_html + '</ul>') if signoff_html else ''}
</body></html>
"""


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#111}
table.matrix{border-collapse:collapse}
.matrix th,.matrix td{border:1px solid #ccc;padding:4px;vertical-align:top;max-width:28em}
.matrix th.doc{text-align:left;font-weight:600;max-width:18em;word-break:break-all}
td.cell summary{cursor:pointer;color:#fff;font-weight:600;padding:2px 6px;border-radius:3px;list-style:none}
td.cell details[open]{min-width:24em}
td.na{color:#999;text-align:center}
.pill{color:#fff;padding:1px 6px;border-radius:3px;margin-right:4px;opacity:.8}
blockquote{margin:4px 0;padding-left:8px;border-left:3px solid #999;color:#333}
pre.trace{white-space:pre-wrap;background:#f5f5f5;padding:6px;max-height:20em;overflow:auto;font-size:12px}
.meta{color:#444}.signoff{color:#0d47a1}
"""


def _html_cell(review: Review, cell: Cell) -> str:
    f = cell.finding
    final = reviewed_verdict(review, cell)
    label = VERDICT_LABELS[cell.verdict] + (f" → {VERDICT_LABELS[final]}" if final != cell.verdict else "")
    citations = "".join(
        f'<div class="citation" data-page="{c["page"]}">[{_h(c["label"])}] page {c["page"]}'
        f'<blockquote class="quote">{_h(c["quote"])}</blockquote></div>'
        for c in f.get("citations", [])
    ) or "<p><i>no passage cited</i></p>"
    grounding = f.get("grounding") or {}
    problems = "".join(f"<li>{_h(p['kind'])}: {_h(p['detail'])}</li>" for p in grounding.get("problems", []))
    signoffs = "".join(f'<p class="signoff">{_signoff_text(s)}</p>'
                       for s in signoffs_for(review, cell.item_id, cell.doc_sha256))
    trace = f.get("trace") or ""
    return (
        f'<td class="cell" data-item="{_h(cell.item_id)}" data-verdict="{_h(cell.verdict)}">'
        f'<details><summary style="background:{VERDICT_COLOURS[final]}">{_h(label)}</summary>'
        f'<p><b>{_h(f["item_title"])}</b>: {_h(f["basis"])}</p>'
        f'<p>confidence {_h(f["confidence"])} · grounding: {_h(grounding_words(grounding))} · audit entry #{cell.audit_seq}</p>'
        + (f"<ul>{problems}</ul>" if problems else "")
        + (f'<p class="answer">{_h(f["rationale"])}</p>' if f.get("rationale") else "")
        + citations
        + (f'<details class="trace-box"><summary style="color:#333">trace ({_h(f.get("trace_format", ""))})</summary>'
           f'<pre class="trace">{_h(trace)}</pre></details>' if trace else "")
        + signoffs
        + "</details></td>"
    )


def _signoff_text(s: SignOff) -> str:
    verdict = f" → {_h(VERDICT_LABELS[s.verdict])}" if s.verdict else ""
    return f"sign-off #{s.audit_seq}: <b>{_h(s.decision)}</b>{verdict} by {_h(s.actor)} ({_h(s.time)}): {_h(s.note)}"


def _matrix(review: Review) -> list[tuple[ReviewDocument, list[Cell | None]]]:
    items = [i["id"] for i in review.checklist["items"]]
    return [(doc, [review.cells.get((i, doc.sha256)) for i in items]) for doc in review.ready_documents]


def _ordered_cells(review: Review) -> list[Cell]:
    return [c for _, cells in _matrix(review) for c in cells if c is not None]


_MD_MARKS = {"compliant": "✔", "non-compliant": "✘", "not-addressed": "∅", "needs-review": "?"}


def _md_mark(review: Review, cell: Cell) -> str:
    final = reviewed_verdict(review, cell)
    mark = _MD_MARKS[cell.verdict]
    return f"{mark} → {_MD_MARKS[final]}" if final != cell.verdict else mark


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _h(value: Any) -> str:
    return html.escape(str(value), quote=True)


def render(review: Review, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(to_json(review), indent=2, ensure_ascii=False) + "\n"
    renderers = {"md": to_markdown, "html": to_html, "csv": to_csv}
    return renderers[fmt](review)
