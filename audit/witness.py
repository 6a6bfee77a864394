"""The witness outside the database: a file of signed heads, appended and fsynced after each
commit, and read back by `verify`; optionally a command that receives each head.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from audit.verification.chain import ChainProblem, TreeHead


WITNESS_COMMAND_TIMEOUT = 30  # seconds a witness command may take per head before it counts as failed


def append_witness_line(path: Path, line: str) -> None:
    """Append one line to the witness file and fsync it (and, when it is new, its directory)."""
    created = not path.exists()
    if created:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


# A witness line is one signed head of a few hundred bytes; longer is not one, and is not read whole.
_WITNESS_LINE_MAX = 4096


def read_witness(path: Path) -> list[TreeHead]:
    """The signed heads of a witness file, by size; a line that is not one is a ChainProblem naming it."""
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return []
    except OSError as error:
        raise ChainProblem(None, f"witness {path}: cannot be read ({error.strerror or error})") from None
    items = []
    with handle:
        for number, raw in enumerate(iter(lambda: handle.readline(_WITNESS_LINE_MAX + 1), b""), start=1):
            where = f"witness {path} line {number}"
            if len(raw) > _WITNESS_LINE_MAX:
                raise ChainProblem(None, f"{where}: longer than {_WITNESS_LINE_MAX} bytes, not a signed head")
            if not raw.strip():
                continue
            try:
                signed = json.loads(raw)
            except (ValueError, RecursionError):
                raise ChainProblem(None, f"{where}: not JSON (a torn or edited line)") from None
            if not isinstance(signed, dict):
                raise ChainProblem(None, f"{where}: not a signed head (a JSON object is expected)")
            if type(signed.get("size")) is not int or signed["size"] < 0:
                raise ChainProblem(None, f"{where}: field 'size' is missing or not a whole number")
            items.append(TreeHead(where, signed, witness=str(path)))
    items.sort(key=lambda item: item.head["size"])
    return items
