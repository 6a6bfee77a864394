"""Batch compliance reviews: a checklist over many documents, each finding evidenced, logged and signed off.

See docs/review.md. The pieces: ``checklist`` (YAML models and validation), ``verdicts`` (answer ->
verdict), ``runner`` (cells on a bounded pool, resumable), ``state`` (SQL tables), ``signoff``,
``reports`` and ``diff``; the ``docket review`` commands are ``pipeline.cli.review``.
"""

from pipeline.review.checklist import Checklist, ChecklistError, ChecklistItem, load_checklist, parse_checklist
from pipeline.review.diff import ReviewDiff, diff_reviews
from pipeline.review.findings import ReviewFinding
from pipeline.review.runner import ReviewError, ReviewInterrupted, RunHooks, RunOutcome, run_review
from pipeline.review.signoff import sign_off
from pipeline.review.state import Review, ReviewState
from pipeline.review.verdicts import VERDICTS, Verdict

__all__ = [
    "VERDICTS",
    "Checklist",
    "ChecklistError",
    "ChecklistItem",
    "Review",
    "ReviewDiff",
    "ReviewError",
    "ReviewFinding",
    "ReviewInterrupted",
    "ReviewState",
    "RunHooks",
    "RunOutcome",
    "Verdict",
    "diff_reviews",
    "load_checklist",
    "parse_checklist",
    "run_review",
    "sign_off",
]
