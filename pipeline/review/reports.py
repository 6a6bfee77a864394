"""Review reports: JSON, CSV, Markdown and a self-contained HTML page, all from one ``Review``.

Rows are documents, columns checklist items. Every cell carries its verdict, confidence, the reason
for the verdict, the cited passages (page and quote), the grounding result, the trace, its audit
entry, and the reviewers' sign-offs on it. The HTML report is the one a reviewer hands to a partner:
an executive summary first (counts by severity and verdict, the open items, who signed off), then
the findings document by document with their quotes and pages, then the grid; it prints to PDF
from a browser (its ``@media print`` rules).

What counts as *open* (``open_items``) is defined here, beside the verdict after sign-offs it rests
on; the rule that a whole-review accept is refused while items are open is ``signoff.py``'s.
"""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import dataclass
from typing import Any

from pipeline.grounding_record import GroundingRecord
from pipeline.review.state import Cell, Review, ReviewDocument, SignOff
from pipeline.review.verdicts import VERDICT_LABELS

FORMATS = ("md", "html", "csv", "json")
# White text on each of these is readable (contrast 4.8:1 or more, WCAG AA for normal text).
VERDICT_COLOURS = {
    "compliant": "#1a7a39",
    "non-compliant": "#c62828",
    "not-addressed": "#6b7280",
    "needs-review": "#9a5b00",
}


def signoffs_for(review: Review, item_id: str | None, sha256: str | None) -> list[SignOff]:
    """Sign-offs that cover a cell: on the cell, its item, its document, or the whole review."""
    return [
        s for s in review.signoffs
        if (s.item_id in (None, item_id)) and (s.doc_sha256 in (None, sha256))
    ]


def grounding_words(grounding: GroundingRecord | None) -> str:
    """What grounding checked, in the words `docket ask` prints (docs/reasoning.md); older findings
    without a label show their verdict."""
    return grounding.words if grounding is not None else "n/a"


def reviewed_verdict(review: Review, cell: Cell) -> str:
    """The verdict after sign-off: the last override that names a verdict wins."""
    for s in reversed(signoffs_for(review, cell.item_id, cell.doc_sha256)):
        if s.decision == "override" and s.verdict:
            return s.verdict
    return cell.verdict


SEVERITIES = ("critical", "high", "medium", "low")  # most severe first, as the summary lists them
NOT_RUN = "not run"


@dataclass(frozen=True)
class OpenItem:
    """Something a reviewer has not resolved: a cell that still needs a human, a cell not run yet, or a
    document that could not be reviewed at all (``item_id`` None)."""

    item_id: str | None
    document: str
    doc_sha256: str | None
    why: str  # "needs human review" | "not run" | "not reviewed: <the error>"

    def describe(self) -> str:
        return f"{self.item_id} x {self.document}: {self.why}" if self.item_id else f"{self.document}: {self.why}"

    def to_dict(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "document": self.document, "doc_sha256": self.doc_sha256, "why": self.why}


def open_items(review: Review) -> list[OpenItem]:
    """What a whole-review accept would sign off unseen, in grid order.

    A cell is open while its verdict after sign-offs is "needs human review" and no sign-off of its own,
    its item's or its document's covers it (a whole-review sign-off does not: that is what is being
    decided), and while a cell the checklist applies to has not been run. A document that failed to be
    reviewed is open too: none of its cells exist, so nothing else would show it."""
    found: list[OpenItem] = []
    expected = {(item_id, doc.sha256) for item_id, doc in review.expected_cells()}
    for doc in review.ready_documents:
        for item in review.checklist["items"]:
            key = (item["id"], doc.sha256)
            cell = review.cells.get(key)
            if cell is None:
                if key in expected:
                    found.append(OpenItem(item["id"], doc.name, doc.sha256, NOT_RUN))
                continue
            covered = any(s.item_id is not None or s.doc_sha256 is not None
                          for s in signoffs_for(review, cell.item_id, cell.doc_sha256))
            if reviewed_verdict(review, cell) == "needs-review" and not covered:
                found.append(OpenItem(item["id"], doc.name, doc.sha256, VERDICT_LABELS["needs-review"]))
    for doc in review.documents:
        if doc.status == "failed":
            found.append(OpenItem(None, doc.name, doc.sha256, f"not reviewed: {doc.error or 'failed'}"))
    return found


def counts_by_severity(review: Review) -> dict[str, dict[str, int]]:
    """Cells by item severity and verdict after sign-offs ("not run" for an applicable cell not run yet),
    most severe first; the executive summary's table and the web page's."""
    severity = {i["id"]: i.get("severity", "medium") for i in review.checklist["items"]}
    verdicts = {(c.item_id, c.doc_sha256): reviewed_verdict(review, c) for c in review.cells.values()}
    for item_id, doc in review.expected_cells():
        verdicts.setdefault((item_id, doc.sha256), NOT_RUN)
    counts: dict[str, dict[str, int]] = {}
    for (item_id, _sha), verdict in verdicts.items():
        row = counts.setdefault(severity.get(item_id, "medium"), {})
        row[verdict] = row.get(verdict, 0) + 1
    order = [s for s in SEVERITIES if s in counts] + sorted(s for s in counts if s not in SEVERITIES)
    return {s: counts[s] for s in order}


def whole_review_signoffs(review: Review) -> list[SignOff]:
    return [s for s in review.signoffs if s.item_id is None and s.doc_sha256 is None]


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
            {**cell.finding.to_payload(), "audit_seq": cell.audit_seq, "reviewed_verdict": reviewed_verdict(review, cell),
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
            review.id, f.document.name, cell.doc_sha256, cell.item_id, f.item_title, f.severity,
            cell.verdict, reviewed_verdict(review, cell), f.confidence, f.basis,
            " | ".join(f"p.{c.page}: {c.quote}" for c in f.citations),
            grounding_words(f.grounding), cell.audit_seq,
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
    lines += _markdown_summary(review)
    lines += ["", "## Grid", "", "| document | " + " | ".join(i["id"] for i in items) + " |", "|---|" + "---|" * len(items)]
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
            f"### {_md(f.document.name)} · {f.item_title} ({f.severity})",
            "",
            f"**{VERDICT_LABELS[cell.verdict]}** (confidence {f.confidence}): {_md(f.basis)}. "
            f"Audit entry #{cell.audit_seq}; grounding: {_md(grounding_words(f.grounding))}.",
        ]
        if f.rationale:
            lines += ["", "> " + _md(f.rationale).replace("\n", "\n> ")]
        for c in f.citations:
            lines.append(f"- [{c.label}] page {c.page}: “{_md(c.quote)}”")
        for s in signoffs_for(review, cell.item_id, cell.doc_sha256):
            lines.append(f"- sign-off #{s.audit_seq}: **{s.decision}**"
                         + (f" → {VERDICT_LABELS[s.verdict]}" if s.verdict else "") + f" by {s.actor}: {_md(s.note)}")
    return "\n".join(lines) + "\n"


def _markdown_summary(review: Review) -> list[str]:
    columns = [*VERDICT_LABELS, NOT_RUN]
    lines = ["", "## Executive summary", "",
             "| severity | " + " | ".join(VERDICT_LABELS.get(v, v) for v in columns) + " |", "|---|" + "---:|" * len(columns)]
    for severity, row in counts_by_severity(review).items():
        lines.append(f"| {severity} | " + " | ".join(str(row.get(v, 0)) for v in columns) + " |")
    opened = open_items(review)
    lines += ["", f"**{len(opened)} open item{'' if len(opened) == 1 else 's'}**" + (":" if opened else ".")]
    lines += [f"- {_md(o.describe())}" for o in opened]
    whole = whole_review_signoffs(review)
    lines += [""] + ([f"- sign-off #{s.audit_seq}: **{s.decision}** of the whole review by {s.actor} ({s.time}): {_md(s.note)}"
                      for s in whole] or ["**Not signed off** as a whole."])
    return lines


def to_html(review: Review) -> str:
    """The report for a partner: executive summary, findings per document, the grid; prints to PDF."""
    info = summary(review)
    checkpoint = (
        f"signed checkpoint: log size {review.checkpoint['size']}, root <code>{_h(review.checkpoint['root'][:16])}</code>"
        if review.checkpoint else "<b>not complete</b>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Review {_h(review.id)}: {_h(review.checklist['title'])}</title>
<style>{_CSS}</style></head>
<body>
<header>
<h1>Review <code>{_h(review.id)}</code>: {_h(review.checklist['title'])}</h1>
<p class="meta">checklist <code>{_h(review.checklist['name'])}</code> v{_h(review.checklist['version'])}
(sha256 <code>{_h(review.checklist_sha256[:16])}</code>) · collection <code>{_h(review.collection)}</code> ·
reasoner {_h(review.reasoner)}{(' (' + _h(review.model) + ')') if review.model else ''} · index generation {review.index_generation}
· started {_h(review.created_at)} by {_h(review.created_by)} · {checkpoint}</p>
</header>
<main>
{_html_summary(review, info)}
<section class="findings" aria-labelledby="findings-title">
<h2 id="findings-title">Findings by document</h2>
{''.join(_html_document(review, doc) for doc in review.ready_documents)}
</section>
{_html_grid(review, info)}
</main>
</body></html>
"""


_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em;color:#111}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.25em;margin:1.4em 0 .5em}h3{font-size:1.1em;margin:1.2em 0 .4em}
h4{font-size:1em;margin:0 0 .3em}
table{border-collapse:collapse}
th,td{border:1px solid #bbb;padding:3px 6px;vertical-align:top;text-align:left}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
section.executive-summary{border:2px solid #333;padding:.6em 1em 1em;margin:1em 0 1.5em}
section.executive-summary h2{margin-top:.2em}
p.headline{font-size:1.05em}
table.counts th[scope=row]{text-transform:capitalize}
.matrix th.doc{text-align:left;font-weight:600;max-width:18em;word-break:break-all}
.matrix td.cell a{display:block;color:#fff;font-weight:600;padding:2px 6px;border-radius:3px;text-decoration:none}
.matrix th small{font-weight:400}
td.na{color:#999;text-align:center}
.pill{display:inline-block;color:#fff;padding:0 6px;border-radius:3px;font-weight:600}
.swatch{display:inline-block;width:.9em;height:.9em;opacity:.6;vertical-align:-.1em}
section.document{margin-top:1em}
article.finding{border:1px solid #ccc;border-left:6px solid #999;padding:.5em .8em;margin:.6em 0}
blockquote{margin:4px 0;padding-left:8px;border-left:3px solid #999;color:#333}
pre.trace{white-space:pre-wrap;background:#f5f5f5;padding:6px;max-height:20em;overflow:auto;font-size:12px}
.meta{color:#444}.signoff{color:#0d47a1}.open{color:#8a4b00}
.screen-only{color:#555;font-size:.9em}
@page{size:A4;margin:16mm 14mm}
@page grid{size:A4 landscape;margin:12mm}
@media print{
  body{margin:0;font-size:10pt;color:#000}
  *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
  .screen-only,details.trace-box{display:none}
  section.executive-summary{break-after:page}
  article.finding,tr{break-inside:avoid}
  h2,h3,h4{break-after:avoid}
  thead{display:table-header-group}
  a{color:inherit;text-decoration:none}
  section.grid{page:grid;break-before:page}
  .matrix{font-size:7.5pt}
  pre.trace{max-height:none;overflow:visible}
}
"""


def _pill(verdict: str, label: str | None = None) -> str:
    return f'<span class="pill" style="background:{VERDICT_COLOURS[verdict]}">{_h(label or VERDICT_LABELS[verdict])}</span>'


def _html_summary(review: Review, info: dict[str, Any]) -> str:
    counts = counts_by_severity(review)
    columns = [*VERDICT_LABELS, NOT_RUN]
    head = "".join(f'<th scope="col" class="num">{_pill(v) if v in VERDICT_COLOURS else _h(v)}</th>' for v in columns)
    body = "".join(
        f'<tr><th scope="row">{_h(sev)}</th>' + "".join(f'<td class="num">{row.get(v, 0)}</td>' for v in columns)
        + f'<td class="num">{sum(row.values())}</td></tr>'
        for sev, row in counts.items()
    )
    totals = {v: sum(row.get(v, 0) for row in counts.values()) for v in columns}
    foot = ('<tr><th scope="row">all</th>' + "".join(f'<td class="num">{totals[v]}</td>' for v in columns)
            + f'<td class="num">{sum(totals.values())}</td></tr>')
    opened = open_items(review)
    open_html = (
        f'<p class="open"><b>{len(opened)} open item{"" if len(opened) == 1 else "s"}</b> (a cell needing a human, '
        "not run, or a document not reviewed):</p><ul class=\"open-items\">"
        + "".join(f"<li>{_h(o.describe())}</li>" for o in opened) + "</ul>"
    ) if opened else "<p><b>No open items</b>: every cell has a verdict or a reviewer's sign-off.</p>"
    whole = whole_review_signoffs(review)
    if whole:
        signed = "<ul class=\"signed\">" + "".join(f"<li>{_signoff_text(s)}</li>" for s in whole) + "</ul>"
    else:
        signed = "<p><b>Not signed off</b>: no reviewer has accepted or overridden the review as a whole.</p>"
    per_cell = [s for s in review.signoffs if s.item_id is not None or s.doc_sha256 is not None]
    cell_line = (f"<p>{len(per_cell)} sign-off{'' if len(per_cell) == 1 else 's'} on cells, items or documents, by "
                 f"{_h(', '.join(sorted({s.actor for s in per_cell})))} (shown with each finding).</p>") if per_cell else ""
    non_compliant = totals.get("non-compliant", 0)
    headline = (
        f"{len(review.ready_documents)} document{'' if len(review.ready_documents) == 1 else 's'} against "
        f"{len(review.checklist['items'])} checklist items: {info['cells']} of {info['expected_cells']} cells recorded, "
        f"<b>{non_compliant} non-compliant</b>, <b>{len(opened)} open</b>; "
        + ("signed off by " + _h(", ".join(dict.fromkeys(s.actor for s in whole))) if whole else "<b>not signed off</b>")
        + "."
    )
    return f"""<section class="executive-summary" aria-labelledby="summary-title">
<h2 id="summary-title">Executive summary</h2>
<p class="headline">{headline}</p>
<table class="counts"><caption>Cells by severity and verdict (after reviewers' sign-offs)</caption>
<thead><tr><th scope="col">severity</th>{head}<th scope="col" class="num">cells</th></tr></thead>
<tbody>{body}</tbody><tfoot>{foot}</tfoot></table>
<h3>Open items</h3>
{open_html}
<h3>Sign-off</h3>
{signed}
{cell_line}
<p class="screen-only">Print this page (or save it as PDF) from the browser: the summary, the findings and the grid
print on their own pages; traces are left out of print (they are in the audit log).</p>
</section>"""


def _anchor(cell: Cell) -> str:
    return f"finding-{cell.item_id}-{cell.doc_sha256[:12]}"


def _html_document(review: Review, doc: ReviewDocument) -> str:
    cells = [review.cells.get((i["id"], doc.sha256)) for i in review.checklist["items"]]
    findings = "".join(_html_finding(review, c) for c in cells if c is not None)
    return (f'<section class="document"><h3>{_h(doc.name)}</h3>'
            f'<p class="meta">SHA-256 <code>{_h((doc.sha256 or "")[:16])}</code> · version {_h(doc.version)}</p>'
            + (findings or "<p><i>No cell recorded yet.</i></p>") + "</section>")


def _html_finding(review: Review, cell: Cell) -> str:
    f = cell.finding
    final = reviewed_verdict(review, cell)
    label = VERDICT_LABELS[cell.verdict] + (f" → {VERDICT_LABELS[final]}" if final != cell.verdict else "")
    citations = "".join(
        f'<div class="citation" data-page="{c.page}">[{_h(c.label)}] page {c.page}'
        f'<blockquote class="quote">{_h(c.quote)}</blockquote></div>'
        for c in f.citations
    ) or "<p><i>no passage cited</i></p>"
    grounding = f.grounding
    problems = "".join(f"<li>{_h(p.kind)}: {_h(p.detail)}</li>" for p in grounding.problems)
    signoffs = "".join(f'<p class="signoff">{_signoff_text(s)}</p>'
                       for s in signoffs_for(review, cell.item_id, cell.doc_sha256))
    trace = f.trace or ""
    requirement = f.requirement or next(
        (i.get("requirement", "") for i in review.checklist["items"] if i["id"] == cell.item_id), "")
    return (
        f'<article class="finding" id="{_anchor(cell)}" data-item="{_h(cell.item_id)}" data-verdict="{_h(cell.verdict)}" '
        f'style="border-left-color:{VERDICT_COLOURS[final]}">'
        f'<h4>{_h(f.item_title)} <small>({_h(f.severity)})</small> {_pill(final, label)}</h4>'
        f'<p class="meta">Requirement: {_h(requirement)}</p>'
        f'<p>{_h(f.basis)}</p>'
        f'<p class="meta">confidence {_h(f.confidence)} · grounding: {_h(grounding_words(grounding))} · '
        f'audit entry #{cell.audit_seq}</p>'
        + (f"<ul>{problems}</ul>" if problems else "")
        + (f'<p class="answer">{_h(f.rationale)}</p>' if f.rationale else "")
        + citations
        + (f'<details class="trace-box"><summary>trace ({_h(f.trace_format or "")})</summary>'
           f'<pre class="trace">{_h(trace)}</pre></details>' if trace else "")
        + signoffs
        + "</article>"
    )


def _html_grid(review: Review, info: dict[str, Any]) -> str:
    items = review.checklist["items"]
    head = "".join(
        f'<th scope="col" title="{_h(i["requirement"])}">{_h(i["id"])}<br><small>{_h(i["severity"])}</small></th>'
        for i in items
    )
    rows = []
    for doc, cells in _matrix(review):
        tds = "".join(_html_cell(review, c) if c else '<td class="na">–</td>' for c in cells)
        rows.append(f'<tr><th scope="row" class="doc">{_h(doc.name)}<br><small>{_h((doc.sha256 or "")[:12])}</small></th>{tds}</tr>')
    failed = [d for d in review.documents if d.status == "failed"]
    failed_html = (
        "<h3>Documents not reviewed</h3><ul>"
        + "".join(f'<li class="failed-doc"><b>{_h(d.name)}</b>: {_h(d.error or "")}</li>' for d in failed)
        + "</ul>"
    ) if failed else ""
    # A swatch beside each word (text on the colour is the cells'); drawn translucent, so the full colours
    # on the page are the cells' own.
    legend = " ".join(f'<span class="swatch" style="background:{VERDICT_COLOURS[v]}"></span> {_h(label)}'
                      for v, label in VERDICT_LABELS.items())
    return f"""<section class="grid" aria-labelledby="grid-title">
<h2 id="grid-title">The grid</h2>
<p class="meta legend">{info['cells']} of {info['expected_cells']} cells · {legend} · – not applicable or not run</p>
<table class="matrix"><thead><tr><th scope="col">document</th>{head}</tr></thead><tbody>
{''.join(rows)}
</tbody></table>
{failed_html}
</section>"""


def _html_cell(review: Review, cell: Cell) -> str:
    final = reviewed_verdict(review, cell)
    label = VERDICT_LABELS[cell.verdict] + (f" → {VERDICT_LABELS[final]}" if final != cell.verdict else "")
    return (f'<td class="cell" data-item="{_h(cell.item_id)}" data-verdict="{_h(cell.verdict)}">'
            f'<a href="#{_anchor(cell)}" style="background:{VERDICT_COLOURS[final]}">{_h(label)}</a></td>')


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
