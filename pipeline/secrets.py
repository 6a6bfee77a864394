"""Secrets stay out: of `config show`, of the audit log, of log lines and error messages.

Two tools. ``mask_url`` hides the password and any secret query parameter of a URL, for display.
``mask_known_secrets`` replaces every occurrence of a known secret value (the configured API keys,
passwords inside configured URLs) in a JSON-like value with ``[REDACTED:<setting>]``: a provider that
echoes the key back in its answer, trace or raw response cannot put it into the append-only log.
``SecretMaskingAuditLog`` applies it to every payload pipeline code appends.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import unquote, urlsplit

from audit import AuditLog
from audit.records import NewEvent

MASK = "***"
# Shorter values are not masked: "test", "local" or "1234" would blank out common words in answers.
MIN_SECRET_LENGTH = 8
# Query parameter names (case-insensitive) whose values are secrets, and fragments that mark one
# (sslpassword, client_secret, access_token, X-Amz-Signature, ...).
_SECRET_PARAMS = {"key", "sig", "sas", "auth", "pwd", "passwd", "code", "credential", "credentials"}
_SECRET_PARTS = ("password", "secret", "token", "api_key", "apikey", "api-key", "signature", "private")

Secret = tuple[str, str]  # (setting name, value)


def is_secret_param(name: str) -> bool:
    lowered = unquote(name).strip().lower()
    return lowered in _SECRET_PARAMS or any(part in lowered for part in _SECRET_PARTS)


def mask_url(url: str) -> str:
    """``scheme://user:pass@host/db?password=x&api_key=y`` -> ``scheme://user:***@host/db?password=***&api_key=***``.

    Only the secrets change (the rest of the text is kept as written, ``sqlite:////abs/path`` too);
    anything that is not a ``scheme://`` URL is returned as it is."""
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    cut = min([i for i in (rest.find(c) for c in "/?#") if i >= 0], default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    if "@" in authority:
        creds, host = authority.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":" + MASK
        authority = f"{creds}@{host}"
    before, mark, after = tail.partition("?")
    if mark:
        query, hash_mark, fragment = after.partition("#")
        after = "&".join(_mask_param(p) for p in query.split("&")) + hash_mark + fragment
    return f"{scheme}://{authority}{before}{mark}{after}"


def _mask_param(pair: str) -> str:
    name, sep, value = pair.partition("=")
    return f"{name}={MASK}" if sep and value and is_secret_param(name) else pair


def url_secrets(url: str) -> list[str]:
    """The secret values inside a URL: its password and its secret query parameters (decoded)."""
    if "://" not in url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = []
    if parts.password:
        found += [parts.password, unquote(parts.password)]
    for pair in parts.query.split("&") if parts.query else []:
        name, sep, value = pair.partition("=")
        if sep and value and is_secret_param(name):
            found += [value, unquote(value)]
    return list(dict.fromkeys(found))


def mask_urls_in(value: Any) -> Any:
    """Every string in a JSON-like value that is a URL, masked with ``mask_url``."""
    if isinstance(value, str):
        return mask_url(value)
    if isinstance(value, dict):
        return {k: mask_urls_in(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_urls_in(v) for v in value]
    return value


def usable_secrets(secrets: Iterable[Secret]) -> list[Secret]:
    """Long enough to mask, once each, longest first (so a key that contains another is masked whole)."""
    seen: dict[str, str] = {}
    for name, value in secrets:
        if value and len(value) >= MIN_SECRET_LENGTH:
            seen.setdefault(value, name)
    return sorted(((name, value) for value, name in seen.items()), key=lambda s: -len(s[1]))


def redaction_mark(name: str) -> str:
    return f"[REDACTED:{name}]"


def mask_text(text: str, secrets: Sequence[Secret]) -> str:
    for name, value in secrets:
        if value in text:
            text = text.replace(value, redaction_mark(name))
    return text


def mask_known_secrets(value: Any, secrets: Iterable[Secret]) -> Any:
    """``value`` (JSON-like: dicts, lists, strings) with every occurrence of a secret replaced by
    ``[REDACTED:<name>]``; the input is not changed.

    A streamed raw response cuts text into deltas, so a key can arrive in pieces
    (``chunks[3].choices[0].delta.content`` = ``"sk-te"``, then ``"st-0123"``). Strings are therefore
    also searched joined with the other strings at the same place in their siblings (the same path with
    list positions ignored), in order, and the pieces of a key that spans several are masked: the first
    carries the mark, the others lose their part of the key."""
    secrets = usable_secrets(secrets)
    if not secrets:
        return value
    groups: dict[tuple[str, ...], list[list[Any]]] = {}
    copy = _collect(value, (), groups, secrets)
    for leaves in groups.values():
        if len(leaves) > 1:
            _mask_pieces(leaves, secrets)
    return _rebuild(copy)


def _collect(value: Any, path: tuple[str, ...], groups: dict, secrets: Sequence[Secret]) -> Any:
    # Strings become one-element holders [text], so a group can rewrite them in place before rebuilding.
    if isinstance(value, str):
        holder = [mask_text(value, secrets)]
        groups.setdefault(path, []).append(holder)
        return holder
    if isinstance(value, dict):
        return {
            mask_text(k, secrets) if isinstance(k, str) else k: _collect(v, (*path, str(k)), groups, secrets)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return _List(_collect(v, (*path, "[]"), groups, secrets) for v in value)
    return value


class _List(list):
    """A list in the copy (told apart from the one-element string holders)."""


def _rebuild(value: Any) -> Any:
    if isinstance(value, _List):
        return [_rebuild(v) for v in value]
    if isinstance(value, list):  # a string holder
        return value[0]
    if isinstance(value, dict):
        return {k: _rebuild(v) for k, v in value.items()}
    return value


def _mask_pieces(holders: list[list[Any]], secrets: Sequence[Secret]) -> None:
    texts = [h[0] for h in holders]
    joined = "".join(texts)
    spans: list[tuple[int, int, str]] = []
    for name, secret in secrets:
        start = joined.find(secret)
        while start >= 0:
            end = start + len(secret)
            if not any(s < end and start < e for s, e, _ in spans):
                spans.append((start, end, redaction_mark(name)))
            start = joined.find(secret, end)
    if not spans:
        return
    spans.sort()
    offset = 0
    for holder, text in zip(holders, texts):
        begin, finish = offset, offset + len(text)
        offset = finish
        out, pos = [], begin
        for s, e, mark in spans:
            if e <= begin or s >= finish:
                continue
            out.append(joined[pos:max(pos, s)])
            if s >= begin:
                out.append(mark)
            pos = min(finish, e)
        if pos != begin or out:
            out.append(joined[pos:finish])
            holder[0] = "".join(out)


class LiveMasker:
    """Masks secrets in text shown live as it streams: a key can be cut across deltas, so a tail that
    could be the start of a secret is held back (per kind of text) until the next delta decides it."""

    def __init__(self, secrets: Iterable[Secret]) -> None:
        self.secrets = usable_secrets(secrets)
        self._held: dict[str, str] = {}

    def feed(self, kind: str, text: str) -> list[tuple[str, str]]:
        """The pieces to show now; text held back of another kind goes first (the trace has ended)."""
        if not self.secrets:
            return [(kind, text)] if text else []
        out = [(k, held) for k, held in self._held.items() if k != kind and held]
        text = mask_text(self._held.pop(kind, "") + text, self.secrets)
        self._held = {}
        keep = max((_prefix_tail(text, value) for _, value in self.secrets), default=0)
        if keep:
            self._held[kind], text = text[-keep:], text[:-keep]
        return out + ([(kind, text)] if text else [])

    def flush(self) -> list[tuple[str, str]]:
        held, self._held = self._held, {}
        return [(kind, text) for kind, text in held.items() if text]


def _prefix_tail(text: str, secret: str) -> int:
    """Length of the longest tail of ``text`` that is a proper prefix of ``secret``."""
    for size in range(min(len(text), len(secret) - 1), 0, -1):
        if secret.startswith(text[-size:]):
            return size
    return 0


class SecretMaskingAuditLog(AuditLog):
    """The audit log pipeline code writes to: every payload is passed through ``mask_known_secrets``
    with the workspace's known secrets before it is hashed and stored. Reads are unchanged."""

    secrets: list[Secret] = []

    def with_secrets(self, secrets: Iterable[Secret]) -> SecretMaskingAuditLog:
        self.secrets = usable_secrets(secrets)
        return self

    def append_many(self, events: Sequence[NewEvent], *args: Any, **kwargs: Any) -> Any:
        if self.secrets:
            events = [replace(e, payload=mask_known_secrets(e.payload, self.secrets)) for e in events]
        return super().append_many(events, *args, **kwargs)


_log_secrets: list[Secret] = []
_record_factory_installed = False


def mask_secrets_in_logs(secrets: Iterable[Secret]) -> None:
    """Keep these secrets out of every log record from now on (httpx logs request URLs at INFO, openai
    logs request options at DEBUG, and their logger names change between versions, so the mask sits in
    the record factory rather than on named loggers). Only records that are emitted are built."""
    global _log_secrets, _record_factory_installed
    _log_secrets = usable_secrets([*_log_secrets, *secrets])
    if _record_factory_installed or not _log_secrets:
        return
    previous = logging.getLogRecordFactory()

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a record whose args do not fit its format: logging reports that itself
            return record
        masked = mask_text(message, _log_secrets)
        if masked != message:
            record.msg, record.args = masked, None
        return record

    logging.setLogRecordFactory(masked_record)
    _record_factory_installed = True
