"""`docket eval`: measure retrieval (and optionally answers) on questions with gold evidence pages.

Input is the JSONL schema of ``../shared/eval`` (see its README): each question names its document
(``pdf_path`` relative to the root folder) and its gold evidence (0-based ``page``, CUAD ``text`` with
``txt_char_span`` into ``cuad/txt``). The documents are ingested into a scratch workspace under the
platform cache folder, keyed by what decides the chunks and vectors (embedding, chunking and OCR
settings, and the code that extracts and chunks) and by the exact set of documents the questions name
(their SHA-256s), so a second run of the same file re-uses it, and a figure depends only on its question
file and the settings, never on which files were evaluated before (BM25's statistics and the corpus of
``--scope corpus`` span the whole workspace). A user's own workspace and audit log are never touched.

Metrics, each per retrieval mode (dense only, BM25 only, hybrid) in one run:

- page R@k (k = 1, 3, 5, 10): share of questions with a gold page among the pages of the top-k chunks
  (the page must be in the question's own document);
- MRR@10 (rank of the first chunk on a gold page) and nDCG@10 (binary gain per distinct gold page);
- span recall@5/@10 for questions with gold clause text: the share of the gold text's words found,
  in order, in the top-k chunks of the right document (see ``span_coverage``);
- query latency p50/p95 (the whole ``DocumentStore.search`` call: question embedding, both searches,
  fusion and reading the hits from the registry).

With ``--ablations`` the hybrid mode is also run without each document signal (statement pages,
contract openings, document names) and without page pooling, one at a time and all together, in the
same run (see ``ingest.retrieval.document_signals``).

With ``--answers`` each question is asked as a user asks it (``pipeline.ask.ask``, fail-closed, nothing
recorded) and the report adds the answer measures of issue 17 (CUAD first-quote overlap per category,
refusal precision/recall, FinanceBench gold number, citation validity); with ``--review CHECKLIST`` the
checklist's cells over the questions' documents, their offline verdict coverage and agreement with
CUAD's annotation. Both are scored in ``pipeline.answer_eval``. ``--part K/N`` keeps the questions of one
part of the documents, to tune on one part and check on another.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, ConfigDict, ValidationError

import ingest
from ingest.extract import sha256_file
from ingest.retrieval import RetrievalOptions
from ingest.store import ChunkHit, DocumentStore
from pipeline.settings import DocketSettings

MODES = ("dense", "bm25", "hybrid")
RECALL_AT = (1, 3, 5, 10)
SPAN_AT = (5, 10)
DEPTH = 10
# The source files whose behaviour decides chunk text, context and so the cached vectors.
_CHUNK_CODE = ("extract.py", "chunking.py", "structure.py", "tables/detection.py", "tables/layout.py", "tables/records.py")


class EvalError(ValueError):
    """Bad input to the eval: the message names the file/line/field and what to do."""


class _Evidence(BaseModel):
    model_config = ConfigDict(extra="ignore")
    doc_id: str
    pdf_path: str
    page: int | None = None
    pages: list[int] | None = None
    text: str | None = None
    txt_char_span: tuple[int, int] | None = None


class EvalQuestion(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    dataset: str = "eval"
    question: str
    answer: str | None = None
    answerable: bool = True
    doc_id: str
    pdf_path: str
    txt_path: str | None = None
    evidence: list[_Evidence] = []
    meta: dict[str, Any] = {}  # CUAD: cuad_category, cuad_answer_column; FinanceBench: question_type, ...

    def gold_pages(self) -> set[tuple[str, int]]:
        """(pdf_path, 1-based page) of every gold evidence page."""
        pages = set()
        for ev in self.evidence:
            for page in ev.pages or ([ev.page] if ev.page is not None else []):
                pages.add((ev.pdf_path, page + 1))
        return pages


def load_questions(path: Path) -> list[EvalQuestion]:
    if not path.is_file():
        raise EvalError(f"{path}: no such file; pass a questions JSONL (e.g. ../shared/eval/cuad/questions.jsonl)")
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            questions.append(EvalQuestion.model_validate_json(line))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "line"
            raise EvalError(f"{path} line {number}: field '{where}': {err['msg']}; see ../shared/eval/README.md") from exc
    if not questions:
        raise EvalError(f"{path}: no questions in the file")
    return questions


# -- the scratch workspace ----------------------------------------------------------------------------
# OCR settings that change no text: parallelism, and the key (a secret, never hashed into a folder name).
_OCR_FIELDS_NOT_KEYED = {"workers", "vision_api_key", "max_image_pixels"}


def workspace_key(settings: DocketSettings) -> str:
    """Hash of what decides chunks and vectors: embedding, chunking and OCR settings and the chunking code."""
    digest = hashlib.sha256()
    ocr = settings.ocr.model_dump(exclude=_OCR_FIELDS_NOT_KEYED)
    digest.update(json.dumps([settings.embedding.model_dump(), settings.chunking.model_dump(), ocr], sort_keys=True).encode())
    package = Path(ingest.__file__).parent
    for name in _CHUNK_CODE:
        digest.update((package / name).read_bytes())
    return digest.hexdigest()[:16]


def question_documents(questions: list[EvalQuestion], root: Path) -> dict[str, str]:
    """pdf_path -> dataset of every document the questions name (their own and their evidence's);
    an EvalError names the first file missing under ``root``."""
    wanted: dict[str, str] = {}
    for q in questions:
        for pdf in {q.pdf_path, *(ev.pdf_path for ev in q.evidence)}:
            wanted.setdefault(pdf, q.dataset)
    missing = sorted(p for p in wanted if not (root / p).is_file())
    if missing:
        raise EvalError(f"{root / missing[0]}: no such file ({len(missing)} missing); pass --root, the folder the pdf_path values are relative to")
    return wanted


def document_set_key(questions: list[EvalQuestion], root: Path) -> str:
    """Short hash of the sorted (dataset, SHA-256) of the documents the questions name: the same files
    under other paths give the same key, one more or one changed file another."""
    members = sorted({(dataset, sha256_file(root / pdf)[0]) for pdf, dataset in question_documents(questions, root).items()})
    return hashlib.sha256(json.dumps(members).encode()).hexdigest()[:12]


def default_workspace(settings: DocketSettings, questions: list[EvalQuestion], root: Path) -> Path:
    """One workspace per settings key and exact document set: BM25's term statistics and the corpus of
    ``--scope corpus`` span the whole workspace, so any other document ingested beside these would change
    the figures (one workspace per dataset name did: a CUAD file's R@5 moved after another CUAD file ran)."""
    datasets = "+".join(sorted({q.dataset for q in questions}))
    folder = f"{datasets}-{document_set_key(questions, root)}"
    return Path(platformdirs.user_cache_dir("docket")) / "eval" / workspace_key(settings) / folder


def ingest_documents(
    store: DocumentStore, questions: list[EvalQuestion], root: Path, on_file=None, ingest_missing: bool = True
) -> dict[str, int]:
    """Ingest every document the questions name (collection = dataset); return pdf_path -> document id.

    With ``ingest_missing`` False, documents not yet in the workspace are left out (and so are their
    questions, see ``eval_command``)."""
    wanted = question_documents(questions, root)
    ids: dict[str, int] = {}
    for pdf, dataset in sorted(wanted.items()):
        known = store.find_current(root / pdf, dataset)
        if known is not None:
            ids[pdf] = known
            continue
        if not ingest_missing:
            continue
        report = store.ingest([root / pdf], collection=dataset)
        result = report.results[0]
        if on_file:
            on_file(result)
        if result.outcome == "failed":
            raise EvalError(f"{result.error}")
        ids[pdf] = result.document_id
    return ids


# -- metrics -------------------------------------------------------------------------------------------
def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def span_coverage(gold: str, passages: list[str], min_run: int = 3) -> float:
    """Share of the gold text's words covered by runs of >= ``min_run`` consecutive words of a passage.

    Gold spans index CUAD's plain-text file, not the PDF, so offsets cannot be compared; the words can.
    Both sides are lowercased to letters and digits (PDF line wraps, hyphenation spacing and quote styles
    differ), and difflib's matching blocks between the gold words and each passage's words mark the gold
    words found. Runs shorter than ``min_run`` words ("the", "of the") are chance, not evidence."""
    target = _words(gold)
    if not target:
        return 0.0
    covered = [False] * len(target)
    for passage in passages:
        matcher = SequenceMatcher(None, target, _words(passage), autojunk=False)
        for block in matcher.get_matching_blocks():
            if block.size >= min(min_run, len(target)):
                covered[block.a : block.a + block.size] = [True] * block.size
    return sum(covered) / len(target)


@dataclass
class QuestionResult:
    id: str
    first_gold_rank: int | None  # 1-based rank of the first chunk on a gold page, within DEPTH
    ndcg: float
    span_recall: dict[int, float] | None
    latency_ms: float
    pages: list[str]  # "document page" of the top chunks, for reading the JSON report


@dataclass
class ModeReport:
    mode: str
    questions: int
    recall: dict[int, float]
    mrr: float
    ndcg: float
    span_recall: dict[int, float] | None
    span_questions: int
    latency_p50_ms: float
    latency_p95_ms: float
    per_question: list[QuestionResult] = field(default_factory=list)


def gold_texts(q: EvalQuestion, root: Path) -> list[str]:
    """The gold clause texts of a question: CUAD's span of its plain-text file, else the evidence text."""
    texts = []
    for ev in q.evidence:
        gold = ev.text
        if ev.txt_char_span and q.txt_path and (root / q.txt_path).is_file():
            start, end = ev.txt_char_span
            gold = (root / q.txt_path).read_text(encoding="utf-8")[start:end] or gold
        if gold:
            texts.append(gold)
    return texts


def score_question(
    q: EvalQuestion, hits: list[ChunkHit], doc_paths: dict[int, str], root: Path, latency_ms: float
) -> QuestionResult:
    gold = q.gold_pages()
    ranked = [(doc_paths.get(h.document_id, ""), h.page) for h in hits[:DEPTH]]
    first = next((rank for rank, key in enumerate(ranked, start=1) if key in gold), None)
    seen: set[tuple[str, int]] = set()
    dcg = 0.0
    for rank, key in enumerate(ranked, start=1):
        if key in gold and key not in seen:
            seen.add(key)
            dcg += 1 / math.log2(rank + 1)
    ideal = sum(1 / math.log2(r + 1) for r in range(1, min(len(gold), DEPTH) + 1))
    # Span recall is for clause-level gold (CUAD's character spans); a gold *page* text is not a span.
    texts = gold_texts(q, root) if any(ev.txt_char_span for ev in q.evidence) else []
    span = None
    if texts:
        gold_docs = {ev.pdf_path for ev in q.evidence}
        span = {}
        for k in SPAN_AT:
            passages = [h.text for h in hits[:k] if doc_paths.get(h.document_id) in gold_docs]
            span[k] = statistics.fmean(span_coverage(t, passages) for t in texts)
    return QuestionResult(
        q.id, first, dcg / ideal if ideal else 0.0, span, latency_ms, [f"{Path(p).stem} p{n}" for p, n in ranked]
    )


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))] if ordered else 0.0


def summarise(mode: str, results: list[QuestionResult]) -> ModeReport:
    n = len(results)
    spans = [r.span_recall for r in results if r.span_recall is not None]
    latencies = [r.latency_ms for r in results]
    return ModeReport(
        mode=mode,
        questions=n,
        recall={k: sum(r.first_gold_rank is not None and r.first_gold_rank <= k for r in results) / n for k in RECALL_AT},
        mrr=sum(1 / r.first_gold_rank for r in results if r.first_gold_rank) / n,
        ndcg=statistics.fmean(r.ndcg for r in results),
        span_recall={k: statistics.fmean(s[k] for s in spans) for k in SPAN_AT} if spans else None,
        span_questions=len(spans),
        latency_p50_ms=_percentile(latencies, 0.5),
        latency_p95_ms=_percentile(latencies, 0.95),
        per_question=results,
    )


# Hybrid with one document signal (or page pooling) switched off: how much each contributes, same run.
ABLATIONS: dict[str, dict[str, float | bool]] = {
    "hybrid − clause expansion": {"query_expansion": False},
    "hybrid − statement pages": {"statement_boost": 0.0},
    "hybrid − openings": {"opening_boost": 0.0},
    "hybrid − document names": {"name_boost": 0.0},
    "hybrid − page pooling": {"page_pooling": 0.0},
    "hybrid − page spreading": {"page_repeat_penalty": 0.0},
    "hybrid − name routing": {"name_routing": False},
    "hybrid − all four": {"statement_boost": 0.0, "opening_boost": 0.0, "name_boost": 0.0, "page_pooling": 0.0},
}


def evaluate_retrieval(
    store: DocumentStore,
    questions: list[EvalQuestion],
    doc_ids: dict[str, int],
    root: Path,
    scope: str,
    options: RetrievalOptions,
    modes: tuple[str, ...] = MODES,
    ablations: bool = False,
) -> list[ModeReport]:
    """Search every question (with gold pages) in every mode; page and span metrics per mode. With
    ``ablations``, also hybrid without each document signal in turn (``ABLATIONS``)."""
    doc_paths = {doc_id: pdf for pdf, doc_id in doc_ids.items()}
    scored = [q for q in questions if q.gold_pages()]
    store.search(scored[0].question, DEPTH, collection=scored[0].dataset, mode="hybrid", options=options)  # warm-up
    runs = [(mode, mode, options) for mode in modes]
    if ablations:
        runs += [(label, "hybrid", replace(options, **off)) for label, off in ABLATIONS.items()]
    reports = []
    for label, mode, run_options in runs:
        results = []
        for q in scored:
            filters: dict[str, Any] = (
                {"document_ids": [doc_ids[q.pdf_path]]} if scope == "doc" else {"collection": q.dataset}
            )
            # Each mode pays for embedding the question: the encoder would serve a repeat from its cache.
            store.encoder.clear_query_cache()
            started = time.perf_counter()
            hits = store.search(q.question, DEPTH, mode=mode, options=run_options, **filters)
            latency = (time.perf_counter() - started) * 1000
            results.append(score_question(q, hits, doc_paths, root, latency))
        reports.append(summarise(label, results))
    return reports


# -- reports -------------------------------------------------------------------------------------------
def report_dict(meta: dict[str, Any], modes: list[ModeReport], answers=None, review=None) -> dict[str, Any]:
    """The JSON report; ``answers`` and ``review`` are pipeline.answer_eval's reports (or None)."""
    return {"meta": meta, "retrieval": [asdict(m) for m in modes], "answers": asdict(answers) if answers else None,
            "review": asdict(review) if review else None}


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def render_markdown(meta: dict[str, Any], modes: list[ModeReport], answers=None, review=None) -> str:
    lines = [
        f"# Eval: {meta['questions_file']} (scope: {meta['scope']}{', part ' + meta['part'] if meta.get('part') else ''})",
        "",
        f"{meta['questions_run']} of {meta['questions_in_file']} questions run, "
        + (f"{meta['scored_questions']} with gold pages; " if meta['scored_questions'] is not None else "retrieval not measured; ")
        + f"{meta['documents']} documents, "
        f"{meta['chunks']} chunks; embedding model {meta['embedding_model']}.",
    ]
    if modes:
        lines += [
            "",
            "| mode | R@1 | R@3 | R@5 | R@10 | MRR@10 | nDCG@10 | span R@5 | span R@10 | p50 ms | p95 ms |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
    for m in modes:
        span = m.span_recall or {}
        lines.append(
            f"| {m.mode} | {' | '.join(_fmt(m.recall[k]) for k in RECALL_AT)} | {_fmt(m.mrr)} | {_fmt(m.ndcg)} | "
            f"{_fmt(span.get(5))} | {_fmt(span.get(10))} | {m.latency_p50_ms:.1f} | {m.latency_p95_ms:.1f} |"
        )
    if answers or review:
        from pipeline.answer_eval import render_answers, render_review

        lines += render_answers(answers) if answers else []
        lines += render_review(review) if review else []
    return "\n".join(lines) + "\n"


def questions_of_part(questions: list[EvalQuestion], part: str) -> list[EvalQuestion]:
    """``K/N``: the questions of the K-th of every N documents (sorted by pdf_path), so a part holds
    whole contracts and another part is documents it never saw."""
    found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", part)
    if not found or not 1 <= int(found[1]) <= int(found[2]):
        raise EvalError(f"--part {part}: expected K/N with 1 <= K <= N, e.g. 1/2")
    k, n = int(found[1]), int(found[2])
    order = sorted({q.pdf_path for q in questions})
    keep = {pdf for i, pdf in enumerate(order) if i % n == k - 1}
    return [q for q in questions if q.pdf_path in keep]


if __name__ == "__main__":  # `python -m pipeline.evaluation ...` = `docket eval ...`
    from pipeline.cli.eval import main

    main()
