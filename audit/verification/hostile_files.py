"""Reading the files an auditor was handed, as hostile input: regular files only, bounded sizes,
strict JSON (no floats, bounded integers and nesting), every record's fields checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from audit.verification.formats import BUNDLE_FORMAT, CHECKPOINT_FORMAT


# What the verifier reads of a file, at most. A file or line beyond these is refused before it is read
# whole, so a hostile bundle or checkpoint cannot make it use unbounded memory.
MAX_JSON_FILE_BYTES = 1 << 20  # manifest.json, checkpoint.json, a kept checkpoint, a public key file
MAX_LINE_BYTES = 64 << 20  # one line of a .jsonl file: an entry with its payload
MAX_JSON_DEPTH = 32  # arrays and objects inside each other; the bundle's own records nest 3 deep
_MAX_INT_DIGITS = 16  # the largest safe integer, 2**53 - 1, has 16 digits
_HEX_DIGITS = "0123456789abcdef"


class BundleFileError(ValueError):
    """A file the verifier refuses. The message is one line naming the file (and line) and why."""


class MissingFile(BundleFileError):
    pass


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
)


def open_regular_file(path: Path, label: str) -> BinaryIO:
    """Open a regular file to read, refusing anything else (a directory, a pipe, a device such as
    /dev/zero behind a symlink) before reading a byte of it."""
    # O_NONBLOCK: opening a named pipe would otherwise wait for a writer. Neither flag exists everywhere.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise MissingFile(f"{label}: missing") from None
    except OSError as error:
        raise BundleFileError(f"{label}: cannot be opened ({error.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a file")
        via = " behind a symlink" if os.path.islink(path) else ""
        raise BundleFileError(f"{label}: is {kind}{via}, not a regular file")
    return os.fdopen(fd, "rb")


def read_bounded(path: Path, label: str, limit: int = MAX_JSON_FILE_BYTES) -> bytes:
    with open_regular_file(path, label) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise BundleFileError(f"{label}: larger than {limit} bytes, which no file of this kind is")
    return data


def _refuse_float(text: str) -> Any:
    raise ValueError(f"the number {text[:24]} is not an integer (no floats here)")


def _bounded_int(text: str) -> int:
    digits = len(text) - text.startswith("-")
    if digits > _MAX_INT_DIGITS:
        raise ValueError(f"an integer of {digits} digits is out of range")
    return int(text)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


# Integers are checked from their digits before any conversion (10**5000 costs nothing to refuse).
_STRICT_JSON = json.JSONDecoder(parse_float=_refuse_float, parse_int=_bounded_int, parse_constant=_refuse_constant)


def _nesting_exceeds(value: Any, limit: int) -> bool:
    """Are arrays and objects nested more than `limit` deep? Level by level, no recursion."""
    level, current = 0, [value]
    while current:
        containers = [v for v in current if isinstance(v, (dict, list))]
        if not containers:
            return False
        level += 1
        if level > limit:
            return True
        current = [child for v in containers for child in (v.values() if isinstance(v, dict) else v)]
    return False


def parse_json(data: bytes, label: str) -> Any:
    """Strict JSON from UTF-8 bytes: no floats, NaN or integers beyond the safe range, bounded nesting."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BundleFileError(f"{label}: not UTF-8 text (byte {error.start + 1} is 0x{data[error.start]:02x})") from None
    try:
        value = _STRICT_JSON.decode(text)
    except RecursionError:
        value = None  # reported below, as any nesting beyond the limit
        deep = True
    except ValueError as error:
        raise BundleFileError(f"{label}: not valid JSON ({error})") from None
    else:
        deep = _nesting_exceeds(value, MAX_JSON_DEPTH)
    if deep:
        raise BundleFileError(f"{label}: JSON nested more than {MAX_JSON_DEPTH} levels deep")
    return value


def read_json_file(path: Path, label: str) -> tuple[bytes, Any]:
    """The bytes of a small JSON file and their strict parse."""
    data = read_bounded(path, label)
    return data, parse_json(data, label)


def read_json_lines(path: Path, label: str, limit: int = MAX_LINE_BYTES) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each line of a JSONL file, reading at most `limit` bytes of any line."""
    with open_regular_file(path, label) as handle:
        number = 0
        while line := handle.readline(limit + 1):
            number += 1
            if len(line) > limit and not line.endswith(b"\n"):
                raise BundleFileError(f"{label} line {number}: longer than {limit} bytes, which no entry is")
            yield number, parse_json(line, f"{label} line {number}")


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return {int: "an integer", str: "a string", list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def is_hex(value: Any, length: int | None = None) -> bool:
    return type(value) is str and bool(value) and (length is None or len(value) == length) and not value.strip(_HEX_DIGITS)


# Each field of a record: a check of its JSON value, and what it must be (for the message).
_Field = tuple[Callable[[Any], bool], str]
_HEX64: _Field = (lambda v: is_hex(v, 64), "64 lowercase hex digits")
_TEXT: _Field = (lambda v: type(v) is str, "a string")
_TEXT_OR_NULL: _Field = (lambda v: v is None or type(v) is str, "a string or null")
_COUNT: _Field = (lambda v: type(v) is int and v >= 0, "an integer of at least 0")
_SEQ: _Field = (lambda v: type(v) is int and v >= 1, "a seq (an integer of at least 1)")
_HASH_LIST: _Field = (lambda v: type(v) is list and all(is_hex(h, 64) for h in v), "an array of 64-hex-digit hashes")
_OBJECT: _Field = (lambda v: type(v) is dict, "an object")

ENTRY_FIELDS: dict[str, _Field] = {
    "seq": _SEQ, "time": _TEXT, "event_type": _TEXT, "actor": _TEXT, "request_id": _TEXT_OR_NULL,
    "subjects": (lambda v: type(v) is list and all(type(s) is str for s in v), "an array of strings"),
    "status": _TEXT_OR_NULL, "payload_commitment": _HEX64, "prev_hash": _HEX64, "leaf_hash": _HEX64,
    "salt": (lambda v: v is None or is_hex(v, 64), "64 lowercase hex digits or null"), "payload": _TEXT_OR_NULL,
}
CHECKPOINT_FIELDS: dict[str, _Field] = {
    "format": (lambda v: v == CHECKPOINT_FORMAT, repr(CHECKPOINT_FORMAT)), "log_id": _TEXT, "size": _COUNT,
    "root": _HEX64, "time": _TEXT, "key_id": _TEXT, "signature": (lambda v: is_hex(v, 128), "128 lowercase hex digits"),
}
MANIFEST_FIELDS: dict[str, _Field] = {
    "format": (lambda v: v == BUNDLE_FORMAT, repr(BUNDLE_FORMAT)), "log_id": _TEXT, "tree_size": _COUNT,
    "root": _HEX64, "filters": (lambda v: type(v) is dict and all(type(x) is str for x in v.values()), "an object of strings"),
    "entries": _COUNT, "key_id": _TEXT,
    "files": (lambda v: type(v) is dict and all(is_hex(d, 64) for d in v.values()), "an object of SHA-256 hex digests"),
}
PROOF_FIELDS: dict[str, _Field] = {"seq": _SEQ, "tree_size": _COUNT, "path": _HASH_LIST}
EARLIER_CHECKPOINT_FIELDS: dict[str, _Field] = {"checkpoint": _OBJECT, "consistency": _HASH_LIST}
KEY_EVENT_FIELDS: dict[str, _Field] = {"entry": _OBJECT, "path": _HASH_LIST}


def check_record(record: Any, fields: Mapping[str, _Field], label: str) -> dict[str, Any]:
    """`record` if it is an object holding every field with the right JSON type; else BundleFileError."""
    if type(record) is not dict:
        raise BundleFileError(f"{label}: expected a JSON object, found {_json_kind(record)}")
    for name, (valid, what) in fields.items():
        if name not in record:
            raise BundleFileError(f"{label}: field '{name}' is missing")
        if not valid(record[name]):
            raise BundleFileError(f"{label}: field '{name}' must be {what}, not {_json_kind(record[name])}")
    return record


def read_checkpoint_file(path: Path, label: str | None = None) -> dict[str, Any]:
    """A checkpoint file (one kept outside the log, or a bundle's checkpoint.json), every field checked."""
    label = label or str(path)
    return check_record(read_json_file(path, label)[1], CHECKPOINT_FIELDS, label)


def sha256_of(handle: BinaryIO) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path, label: str | None = None) -> str:
    with open_regular_file(path, label or str(path)) as handle:
        return sha256_of(handle)
