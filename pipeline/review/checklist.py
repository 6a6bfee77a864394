"""Checklists: the YAML file a compliance team writes, validated with errors that name line and field.

A checklist is a list of items; each item asks one question of every document it applies to and
names the requirement the answer is judged against::

    name: commercial-contract
    title: Commercial contract review
    items:
      - id: governing-law
        title: Governing law
        question: Which state's law governs the agreement?
        requirement: The agreement is governed by New York or Delaware law.
        severity: high
        applies_to: {names: ["*AGREEMENT*"]}
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

import configs

Severity = Literal["low", "medium", "high", "critical"]
_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class ChecklistError(ValueError):
    """A checklist that cannot be used; ``str()`` is one line naming the file, line and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class AppliesTo(_Strict):
    """Which documents an item applies to; every given list must match (empty lists match all)."""

    collections: list[str] = Field(default_factory=list)
    names: list[str] = Field(default_factory=list, description="Glob patterns on the file name, case-insensitive.")

    def matches(self, name: str, collection: str) -> bool:
        if self.collections and collection not in self.collections:
            return False
        return not self.names or any(fnmatch.fnmatch(name.casefold(), p.casefold()) for p in self.names)


RuleKind = Literal["jurisdiction_in", "min_duration_days", "max_duration_days", "amount_present", "clause_present", "clause_absent"]


class _RuleFieldError(ValueError):
    def __init__(self, field: str, message: str, hint: str):
        self.field, self.message, self.hint = field, message, hint
        super().__init__(message)


class Rule(_Strict):
    """A machine-checkable form of an item's requirement, checked against the value the answerer
    extracted (``verdicts.rule_judgement``): the verdict is then the rule's, not a model's.

    - ``jurisdiction_in``: the governing law named is one of ``allowed``;
    - ``min_duration_days`` / ``max_duration_days``: the duration named is at least / at most ``value`` days;
    - ``amount_present``: the answer names an amount (a cap, a fee);
    - ``clause_present`` / ``clause_absent``: a passage addressing the item was found / was not found.
    """

    kind: RuleKind
    allowed: list[str] = Field(default_factory=list)
    value: int | None = None  # whole days (audit payloads hold no floats)

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Rule:
        if self.kind == "jurisdiction_in" and not [a for a in self.allowed if a.strip()]:
            raise _RuleFieldError("allowed", "a jurisdiction_in rule needs the allowed jurisdictions", "list them, e.g. allowed: [New York, Delaware]")
        if self.kind != "jurisdiction_in" and self.allowed:
            raise _RuleFieldError("allowed", f"a {self.kind} rule takes no allowed list", "remove it")
        if self.kind in ("min_duration_days", "max_duration_days"):
            if self.value is None or self.value <= 0:
                raise _RuleFieldError("value", f"a {self.kind} rule needs a number of days above 0", "give it, e.g. value: 30")
        elif self.value is not None:
            raise _RuleFieldError("value", f"a {self.kind} rule takes no value", "remove it")
        return self

    def describe(self) -> str:
        if self.kind == "jurisdiction_in":
            return "governing law is one of " + ", ".join(self.allowed)
        if self.kind == "min_duration_days":
            return f"at least {self.value:g} days"
        if self.kind == "max_duration_days":
            return f"at most {self.value:g} days"
        return {"amount_present": "an amount is stated", "clause_present": "the clause is present",
                "clause_absent": "the clause is absent"}[self.kind]


class ChecklistItem(_Strict):
    id: str = Field(pattern=_ID_PATTERN)
    title: str = Field(min_length=1, max_length=200)
    question: str = Field(min_length=5)
    requirement: str = Field(min_length=5, description="What a compliant document says, in plain words.")
    severity: Severity = "medium"
    applies_to: AppliesTo = Field(default_factory=AppliesTo)
    rule: Rule | None = Field(default=None, description="A machine-checkable form of the requirement (optional).")


class Checklist(_Strict):
    name: str = Field(pattern=_ID_PATTERN)
    title: str = Field(min_length=1)
    version: str = "1"
    description: str = ""
    items: list[ChecklistItem] = Field(min_length=1)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) else value

    @model_validator(mode="after")
    def _unique_ids(self) -> Checklist:
        seen: set[str] = set()
        for index, item in enumerate(self.items):
            if item.id in seen:
                raise _DuplicateId(index, item.id)
            seen.add(item.id)
        return self

    def item(self, item_id: str) -> ChecklistItem:
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def fingerprint(self) -> str:
        """SHA-256 of the checklist's content (not its comments or layout): what a review ran."""
        content = self.model_dump(mode="json")
        for item in content["items"]:
            if item.get("rule") is None:
                item.pop("rule", None)  # an item without a rule fingerprints as it did before rules existed
        blob = json.dumps(content, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


class _DuplicateId(ValueError):
    def __init__(self, index: int, item_id: str):
        self.index, self.item_id = index, item_id
        super().__init__(f"duplicate item id {item_id!r}")


# -- loading ----------------------------------------------------------------------------------------


def resolve_checklist_path(ref: str | Path) -> Path:
    """A path to a YAML file, or the name of a checklist shipped in configs/checklists/."""
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    shipped = configs.CHECKLISTS_DIR / f"{ref}.yaml"
    if shipped.is_file():
        return shipped
    names = ", ".join(sorted(p.stem for p in configs.CHECKLISTS_DIR.glob("*.yaml")))
    raise ChecklistError(f"checklist {ref}: no such file and no shipped checklist of that name (shipped: {names})")


def load_checklist(ref: str | Path) -> Checklist:
    path = resolve_checklist_path(ref)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ChecklistError(f"checklist {path}: cannot read it as UTF-8 text ({exc})") from exc
    return parse_checklist(text, str(path))


def parse_checklist(text: str, source: str = "<checklist>") -> Checklist:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ChecklistError(f"checklist {source}{where}: not valid YAML ({problem}); fix the syntax") from exc
    if not isinstance(data, dict):
        raise ChecklistError(f"checklist {source} line 1: expected a mapping with name, title and items")
    try:
        return Checklist.model_validate(data)
    except ValidationError as exc:
        raise ChecklistError(_describe(exc, root, source)) from exc


def _describe(exc: ValidationError, root: yaml.Node | None, source: str) -> str:
    error = exc.errors()[0]
    loc = tuple(error["loc"])
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, _DuplicateId):
        loc = ("items", cause.index, "id")
        message, hint = f"duplicate item id {cause.item_id!r}", "give every item its own id"
    elif isinstance(cause, _RuleFieldError):
        loc = loc + (cause.field,)
        message, hint = cause.message, cause.hint
        line = _line_of(root, loc, missing=True) if cause.field not in _keys_at(root, loc[:-1]) else _line_of(root, loc, missing=False)
        field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
        return f"checklist {source} line {line}, field '{field}': {message}; {hint}"
    else:
        message, hint = error["msg"], _HINTS.get(error["type"], "fix the value")
        if error["type"] == "string_pattern_mismatch":
            message = f"{error.get('input')!r} is not an id"
            hint = "use lowercase letters, digits, '-' and '_' (at most 64 characters)"
    line = _line_of(root, loc, missing=error["type"] == "missing")
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "(top level)"
    return f"checklist {source} line {line}, field '{field}': {message}; {hint}"


_HINTS = {
    "missing": "add it",
    "extra_forbidden": "remove it or check its spelling",
    "literal_error": "use one of the allowed values",
    "too_short": "it must not be empty",
    "string_too_short": "write it out",
    "list_type": "write it as a YAML list",
    "model_type": "write it as a YAML mapping (key: value)",
    "string_type": "write it as text",
}


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...], *, missing: bool) -> int:
    """1-based line of the YAML node at ``loc``; for a missing field, the mapping that lacks it."""
    node = root
    path = loc[:-1] if missing else loc
    for part in path:
        child = _child(node, part)
        if child is None:
            break
        node = child
    return (node.start_mark.line + 1) if node is not None else 1


def _keys_at(root: yaml.Node | None, loc: tuple[Any, ...]) -> set[str]:
    node = root
    for part in loc:
        node = _child(node, part)
    return {key.value for key, _ in node.value} if isinstance(node, yaml.MappingNode) else set()


def _child(node: yaml.Node | None, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == part:
                return value
        return None
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return node.value[part]
    return None
