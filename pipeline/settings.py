"""Docket's settings: one pydantic model, filled from a YAML preset, the environment and CLI flags.

Precedence, strongest first: explicit overrides (CLI flags) > ``DOCKET_SECTION__FIELD`` environment
variables > the short aliases scripts and CI use (``DOCKET_REASONER``, ``DOCKET_LLM_BASE_URL``,
``DOCKET_LLM_MODEL``, ``DOCKET_LLM_API_KEY`` then ``MISTRAL_API_KEY``) > the YAML file named by
``--config`` / ``DOCKET_CONFIG`` (a path, or a preset name from ``configs/``) > the defaults below.

The defaults are the embedded, offline set-up: SQLite in the workspace, the packaged MiniLM encoder,
Tesseract, and the extractive answerer.
"""

from __future__ import annotations

import getpass
import hashlib
import importlib.util
import json
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import platformdirs
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

import configs
from ingest.config import PACKAGED_EMBEDDING_MODEL, ChunkingSettings, EmbeddingSettings, IngestSettings, OcrSettings

MISTRAL_BASE_URL = "https://api.mistral.ai/v1"


RAY_NOT_INSTALLED = (
    "compute.engine is 'ray' but Ray is not installed here; install it on every node with "
    "pip install 'docket[ray]' (docs/scale.md), or set compute.engine: local"
)


class ConfigError(ValueError):
    """A config file or setting that cannot be used; the message names it and says what to do."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetrievalSettings(_Section):
    """Retrieval knobs; the same names as ``ingest.retrieval.RetrievalOptions`` (see docs/retrieval.md)."""

    top_k: int = Field(5, ge=1, le=100)
    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    fusion: Literal["convex", "rrf"] = "convex"
    dense_weight: float = Field(1.0, ge=0)
    lexical_weight: float = Field(1.0, ge=0)
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant.")
    candidates: int = Field(50, ge=1, description="Hits taken from each retriever before fusion.")
    query_analysis: bool = Field(True, description="Weigh a question's content above its instructions.")
    query_expansion: bool = Field(True, description="Also search for how an answering clause is usually worded.")
    mmr_lambda: float = Field(1.0, ge=0, le=1, description="1 = relevance only; lower adds diversity.")
    neighbours: int = Field(0, ge=0, le=5, description="Adjacent chunks on the same page merged into each hit.")
    reranker: str | None = Field(None, description="A local cross-encoder folder; none ships offline.")
    rerank_candidates: int = Field(20, ge=1)
    statement_boost: float = Field(0.5, ge=0, description="Added to chunks on a financial statement the question is about.")
    opening_boost: float = Field(0.5, ge=0, description="Added to a document's opening chunks for parties/date questions.")
    name_boost: float = Field(0.5, ge=0, description="Added to chunks of the documents the question names.")
    page_pooling: float = Field(0.1, ge=0, description="Share of a page's next two chunk scores added to its best; 0 = off.")
    page_repeat_penalty: float = Field(0.2, ge=0, description="Taken off a page's n-th chunk n - 1 times; 0 = off.")
    name_routing: bool = Field(True, description="Over several documents, search those the question names, if it names some.")


class LLMSettings(_Section):
    provider: Literal["mistral", "openai-compatible"] = "mistral"
    base_url: str | None = Field(None, description="Defaults to Mistral's API for provider 'mistral'.")
    # Mistral's successor to the retired/deprecated Magistral API models, named as in Mistral's docs (not checked
    # against a live GET /v1/models here: no key). A 404 lists the models the endpoint offers (pipeline/llm/client.py).
    model: str = "mistral-medium-3-5"
    api_key: SecretStr | None = None
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(8192, ge=16)
    seed: int | None = None
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(5, ge=0)
    context_budget_tokens: int = Field(16_000, ge=512)
    concurrency: int = Field(4, ge=1)
    system_format: Literal["auto", "chunks", "text"] = Field(
        "auto",
        description="How the system prompt is sent: 'chunks' (Magistral's list form), 'text' (one string, for "
        "servers that take only strings), 'auto' (chunks, then text once if the server refuses them).",
    )
    reasoning_effort: Literal["none", "low", "medium", "high"] | None = Field(
        None,
        description="Sent as reasoning_effort to models that take it: on provider 'mistral' every model but the "
        "magistral-* ones (Mistral Medium 3.5, Small 4: 'high' returns thinking chunks, 'none' none); on "
        "'openai-compatible' only when set (the OpenAI field; vLLM passes it to the chat template). Unset: never sent.",
    )
    prompt_mode: str | None = Field(
        None, description="Provider 'mistral' only: sent as prompt_mode (e.g. 'reasoning'); unset leaves the API's default."
    )
    template_opens_trace: bool = Field(
        False,
        description="The server's chat template writes the opening <think>/[THINK] tag into the prompt, so replies "
        "start inside the trace and send only its closing tag. Off: a trace starts only with an opening tag at the "
        "start of the reply, and tags anywhere else are answer text.",
    )

    def resolved_base_url(self) -> str:
        return self.base_url or MISTRAL_BASE_URL


class GroundingSettings(_Section):
    allow_ungrounded: bool = Field(
        False,
        description="Show an answer that fails grounding (a citation, quote or number not in its sources, or no "
        "answer of the kind the question asks for) as an answer, flagged. Off (the default): it is withheld, kept in "
        "the record, and `docket ask` exits 1.",
    )
    strict: bool | None = Field(
        None, description="No longer used: withholding an answer that fails grounding is the default (see allow_ungrounded)."
    )
    low_confidence_threshold: float = Field(0.6, ge=0, le=1)


class AuditSettings(_Section):
    """The audit log's operating knobs (its database is `audit_url`, its keys the workspace's)."""

    lock_timeout: float = Field(
        30.0, gt=0, description="Seconds a writer waits for the log's write lock before failing with who holds it."
    )
    witness: Path | None = Field(
        None,
        description="A JSONL file outside the database (another disk, a WORM mount): every signed tree head is "
        "appended and fsynced after its commit, and `audit verify` fails when the log is behind it or disagrees.",
    )
    witness_command: list[str] | None = Field(
        None,
        description="A command (argument list) that receives every signed head as one JSON line on stdin, e.g. for "
        "WORM storage or a remote witness; its failure is logged, the entry stays committed.",
    )
    trusted_keys: list[str] = Field(
        default_factory=list,
        description="Public key files or key ids `audit verify` trusts beside the workspace's own keys (keys/).",
    )

    @field_validator("witness", mode="after")
    @classmethod
    def _expand_witness(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("witness_command", mode="after")
    @classmethod
    def _command_not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("give the command as a list of arguments, e.g. [witness-put, --log, docket]")
        return value


class ServiceSettings(_Section):
    """`docket serve`: the HTTP API's limits (pipeline/service/, docs/service.md)."""

    max_upload_mb: float = Field(50.0, gt=0, description="Largest upload accepted, in MiB; larger ones answer 413.")
    max_upload_pages: int = Field(
        2000, ge=1, description="Most pages in one uploaded PDF, checked before it is ingested; more answer 413."
    )
    max_json_kb: int = Field(256, ge=1, description="Largest JSON request body, in KiB; larger ones answer 413.")
    rate_limit_per_minute: int = Field(
        600, ge=1, description="Requests one token, session or address may make per minute; more answer 429."
    )
    session_hours: float = Field(12.0, gt=0, description="How long a browser session cookie stays valid.")
    cookie_secure: bool = Field(
        False, description="Mark the session cookie Secure (set it when the service is behind HTTPS)."
    )
    trusted_proxy_header: str | None = Field(
        None, description="Off by default. A header (e.g. X-Forwarded-User) naming the user, set by an SSO reverse "
        "proxy; believed only from trusted_proxies (docs/service.md, 'Identities and access', for the risks).",
    )
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Addresses or CIDR ranges of the SSO proxies whose header is believed."
    )


class MigrationSettings(_Section):
    """How a workspace made by an older Docket is brought to this one's schema (docs/architecture.md, "Migrations")."""

    auto_upgrade: bool | None = Field(
        None,
        description="Upgrade the registry and audit databases when they open. Unset: yes for SQLite, no for "
        "PostgreSQL, which other clients may share (opening says to run `docket db upgrade`). A new database "
        "is created at the current schema either way.",
    )


class ComputeSettings(_Section):
    """Where ingest, question batches and reviews run: this process, or a Ray cluster (docs/scale.md)."""

    engine: Literal["local", "ray"] = Field(
        "local", description="'ray': fan ingest, `ask --questions` and review cells out to a Ray cluster "
        "(pip install 'docket[ray]'); 'local': this process, as always.",
    )
    address: str | None = Field(
        None, description="The Ray cluster to join: 'auto' (the one `ray start` runs on this host), host:port of "
        "its head, or ray://host:10001. Unset: a private local Ray is started for the command and stopped after.",
    )
    namespace: str = Field("docket", description="Ray namespace of Docket's named actors (the LLM slots).")
    actors: int | None = Field(
        None, ge=1, description="Encoder actors at ingest, question and review-cell workers; unset: one per node.",
    )
    max_in_flight: int | None = Field(
        None, ge=1, description="Documents, questions or cells submitted and not yet recorded; unset: 4 per CPU.",
    )
    task_retries: int = Field(
        3, ge=0, description="Times Docket resubmits a task whose worker or node died, before the file, question "
        "or cell is reported failed (results are recorded by the driver only, so a retry duplicates nothing).",
    )
    object_store_mb: int | None = Field(
        None, ge=75, description="Object store of the private local Ray (address unset); unset: Ray's default.",
    )

    @field_validator("engine", mode="after")
    @classmethod
    def _ray_installed(cls, engine: str) -> str:
        # Refused when the settings load, before a command writes anything (a review started, a registry made).
        if engine == "ray" and importlib.util.find_spec("ray") is None:
            raise ValueError(RAY_NOT_INSTALLED)
        return engine


class DocketSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DOCKET_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    home: Path = Field(
        default_factory=lambda: Path(platformdirs.user_data_dir("docket")),
        description="Workspace: registry, index, audit log and keys.",
    )
    registry_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in the workspace.")
    audit_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in the workspace.")
    actor: str = Field(default_factory=getpass.getuser)
    collection: str = "default"
    reasoner: Literal["extractive", "magistral"] = "extractive"
    embedding: EmbeddingSettings = EmbeddingSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    llm: LLMSettings = LLMSettings()
    ocr: OcrSettings = OcrSettings()
    ingest: IngestSettings = IngestSettings()
    grounding: GroundingSettings = GroundingSettings()
    audit: AuditSettings = AuditSettings()
    migrations: MigrationSettings = MigrationSettings()
    service: ServiceSettings = ServiceSettings()
    compute: ComputeSettings = ComputeSettings()

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _ShortEnvAliases(settings_cls),
            _YamlFileSource(settings_cls),
        )

    # -- derived values -------------------------------------------------------------------------
    @property
    def resolved_registry_url(self) -> str:
        return self.registry_url or f"sqlite:///{self.home / 'registry.db'}"

    @property
    def resolved_audit_url(self) -> str:
        return self.audit_url or f"sqlite:///{self.home / 'audit.db'}"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    def public_dict(self) -> dict[str, Any]:
        """Settings as plain JSON data with secrets masked: safe for logs, `config show` and audit.

        API keys become ``***``; every setting that holds a URL (registry_url, audit_url, llm.base_url,
        ocr.vision_base_url, any other) has its password and secret query parameters masked."""
        from pipeline.secrets import mask_urls_in

        data = mask_urls_in(self.model_dump(mode="json"))
        if data["llm"].get("api_key"):
            data["llm"]["api_key"] = "***"
        if data["ocr"].get("vision_api_key"):
            data["ocr"]["vision_api_key"] = "***"
        return data

    def known_secrets(self) -> list[tuple[str, str]]:
        """(setting, value) of every secret in force: the API keys, and passwords and secret query
        parameters inside configured URLs. Masked wherever text reaches the audit log or a log line."""
        from pipeline.secrets import url_secrets

        found: list[tuple[str, str]] = []
        for name, secret in (("llm.api_key", self.llm.api_key), ("ocr.vision_api_key", self.ocr.vision_api_key)):
            if secret is not None:
                found.append((name, secret.get_secret_value()))
        urls = {
            "registry_url": self.registry_url, "audit_url": self.audit_url,
            "llm.base_url": self.llm.base_url, "ocr.vision_base_url": self.ocr.vision_base_url,
        }
        for name, url in urls.items():
            found += [(name, value) for value in url_secrets(url or "")]
        return found

    def config_hash(self) -> str:
        """SHA-256 of the public settings, recorded with every answer so a run can be matched to its config."""
        data = self.public_dict()
        # Where the work ran is not what it computed: the engines give equal results (tests/test_ray*.py),
        # so an answer's hash is the same locally and on Ray.
        data.pop("compute", None)
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()


def redact_url_password(url: str | None) -> str | None:
    """postgresql://user:secret@host/db?password=x -> postgresql://user:***@host/db?password=***"""
    from pipeline.secrets import mask_url

    return mask_url(url) if url else url


# -- sources ------------------------------------------------------------------------------------

_yaml_data: ContextVar[dict[str, Any]] = ContextVar("docket_yaml_data", default={})


class _YamlFileSource(PydanticBaseSettingsSource):
    def get_field_value(self, field, field_name):  # pragma: no cover - required by the ABC, unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_yaml_data.get())


class _ShortEnvAliases(PydanticBaseSettingsSource):
    """The flat variable names that the issue tracker and scripts use."""

    def get_field_value(self, field, field_name):  # pragma: no cover - required by the ABC, unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        env = os.environ
        llm: dict[str, Any] = {}
        for var, key in (("DOCKET_LLM_BASE_URL", "base_url"), ("DOCKET_LLM_MODEL", "model")):
            if env.get(var):
                llm[key] = env[var]
        key = env.get("DOCKET_LLM_API_KEY") or env.get("MISTRAL_API_KEY")
        if key:
            llm["api_key"] = key
        return {"llm": llm} if llm else {}


def resolve_config_path(config: str | Path) -> Path:
    """A path to a YAML file, or the name of a preset in configs/ ('offline', 'mistral', ...)."""
    path = Path(config).expanduser()
    if path.is_file():
        return path
    preset = configs.preset_path(str(config))
    if preset is not None:
        return preset
    raise ConfigError(
        f"config {config!s}: no such file and no preset of that name "
        f"(presets: {', '.join(configs.preset_names())})"
    )


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config {path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config {path}: expected a mapping of settings at the top level")
    return data


def load_settings(config: str | Path | None = None, **overrides: Any) -> DocketSettings:
    """Build the settings; raise ConfigError with a one-line message naming the bad field."""
    from pydantic import ValidationError

    config = config or os.environ.get("DOCKET_CONFIG")
    path = resolve_config_path(config) if config else None
    token = _yaml_data.set(read_config_file(path) if path else {})
    try:
        return DocketSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        source = f"config {path}: " if path else "settings: "
        raise ConfigError(f"{source}field '{field}': {err['msg']}") from exc
    finally:
        _yaml_data.reset(token)
