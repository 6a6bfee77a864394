"""The composition root: builds the store, the reasoner and the audit log from settings, lazily.

The CLI, the demo, reviews and tests all go through ``Docket``, so the three of them differ only in
settings: an offline laptop, an on-prem server and a cloud user run the same code.
"""

from __future__ import annotations

from functools import cached_property
from importlib.metadata import PackageNotFoundError, version

from audit import AuditLog
from ingest.store import DocumentStore
from pipeline.reasoning import Reasoner
from pipeline.secrets import SecretMaskingAuditLog
from pipeline.settings import DocketSettings


def software_version() -> str:
    try:
        return f"docket {version('docket')}"
    except PackageNotFoundError:  # pragma: no cover - running from a checkout without install
        return "docket (not installed)"


class Docket:
    def __init__(self, settings: DocketSettings):
        self.settings = settings

    @cached_property
    def store(self) -> DocumentStore:
        s = self.settings
        s.home.mkdir(parents=True, exist_ok=True)
        return DocumentStore(s.resolved_registry_url, s.index_dir, s.embedding, s.chunking, s.ocr, s.ingest)

    @cached_property
    def audit(self) -> AuditLog:
        self.settings.home.mkdir(parents=True, exist_ok=True)
        # Payloads are masked of the workspace's known secrets (an API key a provider echoed back) on append.
        log = SecretMaskingAuditLog.open(self.settings.resolved_audit_url, keys_dir=self.settings.keys_dir)
        return log.with_secrets(self.settings.known_secrets())

    @cached_property
    def reasoner(self) -> Reasoner:
        if self.settings.reasoner == "magistral":
            from pipeline.llm import MagistralReasoner

            return MagistralReasoner(self.settings.llm)
        from pipeline.extractive import ExtractiveReasoner

        return ExtractiveReasoner(self.store.encoder.encode_for_question)
