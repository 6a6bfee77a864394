"""The composition root: builds the store, the reasoner and the audit log from settings, lazily.

The CLI, the demo, reviews and tests all go through ``Docket``, so the three of them differ only in
settings: an offline laptop, an on-prem server and a cloud user run the same code.
"""

from __future__ import annotations

from functools import cache, cached_property
from pathlib import Path
from importlib.metadata import PackageNotFoundError, version

from audit import AuditLog
from ingest.store import DocumentStore
from pipeline.reasoning import Reasoner
from pipeline.secrets import SecretMaskingAuditLog
from pipeline.settings import DocketSettings


@cache  # read from the installed package's metadata, a file read each time: every answer record names it
def software_version() -> str:
    try:
        return f"docket {version('docket')}"
    except PackageNotFoundError:  # pragma: no cover - running from a checkout without install
        return "docket (not installed)"


# The workspace's databases (and SQLite's WAL, SHM and journal files beside them) hold every
# question, answer and document record: readable by the workspace's owner only.
_WORKSPACE_DATABASES = ("audit.db", "registry.db")
_SQLITE_SIDE_FILES = ("", "-wal", "-shm", "-journal")


def private_workspace(home: Path) -> None:
    """Create the workspace folder 0700 and make it and its database files owner-only (0700 / 0600).

    SQLite gives the WAL and SHM files it creates later the database file's permissions.
    """
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    if home.stat().st_mode & 0o077:
        home.chmod(0o700)
    for name in _WORKSPACE_DATABASES:
        for suffix in _SQLITE_SIDE_FILES:
            path = home / f"{name}{suffix}"
            if path.is_file() and path.stat().st_mode & 0o077:
                path.chmod(0o600)


class Docket:
    def __init__(self, settings: DocketSettings):
        self.settings = settings

    @cached_property
    def store(self) -> DocumentStore:
        s = self.settings
        private_workspace(s.home)
        from pipeline.migrations import upgrade_registry_url

        # Before the store opens it: the store's own open checks with the default (a shared PostgreSQL
        # registry is upgraded only when migrations.auto_upgrade says so).
        upgrade_registry_url(s.resolved_registry_url, s.migrations.auto_upgrade)
        from pipeline.clause_match import clause_expansion

        store = DocumentStore(s.resolved_registry_url, s.index_dir, s.embedding, s.chunking, s.ocr, s.ingest,
                              query_expanders=(clause_expansion,))
        private_workspace(s.home)  # the registry database it may just have created
        return store

    @cached_property
    def audit(self) -> AuditLog:
        private_workspace(self.settings.home)
        audit = self.settings.audit
        # Payloads are masked of the workspace's known secrets (an API key a provider echoed back) on append.
        log = SecretMaskingAuditLog.open(
            self.settings.resolved_audit_url, keys_dir=self.settings.keys_dir, lock_timeout=audit.lock_timeout,
            witness=audit.witness, witness_command=audit.witness_command, trusted_keys=audit.trusted_keys,
            auto_upgrade=self.settings.migrations.auto_upgrade,
        )
        return log.with_secrets(self.settings.known_secrets())

    @cached_property
    def reasoner(self) -> Reasoner:
        if self.settings.reasoner == "magistral":
            from pipeline.llm import MagistralReasoner

            return MagistralReasoner(self.settings.llm)
        from pipeline.extractive import ExtractiveReasoner

        return ExtractiveReasoner(self.store.encoder.encode_for_question)
