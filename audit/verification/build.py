"""``python -m audit.verification.build [--check]``: write ``audit/verify_bundle.py`` from this package.

The auditor's verifier must be one file (copied into every bundle, checked against a release's
SHA-256) that needs nothing but Python and `cryptography`; the library's code lives in modules with
one job each. This joins the modules, in ``MODULES`` order, into that file: their imports of each
other dropped, their standard-library and `cryptography` imports merged at the top, each module's
code under a comment naming it. ``--check`` writes nothing and exits 1 when the file on disk is not
the build (tests/test_verify_bundle_source.py runs the same comparison).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from audit.verification import MODULES, VERIFIER_SCRIPT

PACKAGE = Path(__file__).resolve().parent
OWN_PREFIX = "audit.verification."
THIRD_PARTY = ("cryptography",)  # besides the standard library, what the script may import
WIDTH = 110

HEADER = '''"""Docket audit verifier: standard library plus `cryptography`, in one file on purpose.

This file is copied verbatim into every export bundle as ``verify_bundle.py`` so that an auditor can
check a bundle on another machine with nothing of Docket installed::

    python verify_bundle.py BUNDLE_DIR --trust LOG_KEY.pub [--checkpoint MY_CHECKPOINT.json] [--json]

It is built from the modules of Docket's ``audit/verification/`` package, one section each
(``python -m audit.verification.build``; edit those modules, not this file). The log itself
(``audit.log``) verifies through the same modules, so what the auditor runs is the code Docket runs.
It holds:

* canonical JSON (RFC 8785) for float-free JSON, with the standard library;
* RFC 9162 Merkle hashing: leaf ``H(0x00||d)``, node ``H(0x01||l||r)``, a compact frontier, and the
  inclusion / consistency proof checks of RFC 9162 sections 2.1.3.2 and 2.1.4.2;
* the leaf encoding of an audit entry, payload commitments and Ed25519 checkpoint signatures;
* `ChainVerifier`, the one-pass (O(n) time, O(log n) memory) check of a stream of entries, and
  `check_range` / `ChainVerifier.absorb`, which let ranges of it be checked in other processes
  with the same report;
* the bounded, strict reading of the files an auditor was handed, and the keys they trust;
* `verify_bundle`, the check of an exported bundle directory, and the command line.
"""
'''


class BuildError(ValueError):
    pass


def _from_import(module: str, names: list[str]) -> str:
    line = f"from {module} import {', '.join(names)}"
    if len(line) <= WIDTH:
        return line
    rows, row = [], "   "
    for name in names:
        if len(row) + len(name) + 2 > WIDTH:
            rows.append(row.rstrip())
            row = "   "
        row += f" {name},"
    rows.append(row.rstrip())
    return f"from {module} import (\n" + "\n".join(rows) + "\n)"


def _split(name: str) -> tuple[str, list[ast.stmt], str]:
    """(the module's docstring, its imports, its code after them)."""
    path = PACKAGE / f"{name}.py"
    source = path.read_text(encoding="utf-8")
    body = ast.parse(source, filename=str(path)).body
    docstring = ast.get_docstring(ast.Module(body=body, type_ignores=[])) or ""
    statements = body[1:] if docstring else body
    imports: list[ast.stmt] = []
    for node in statements:
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            break
        imports.append(node)
    end = imports[-1].end_lineno if imports else (body[0].end_lineno if docstring else 0)
    later = [n for n in statements[len(imports):] if isinstance(n, (ast.Import, ast.ImportFrom))]
    if later:  # an import below the code would be lost to the merged header
        raise BuildError(f"{path}:{later[0].lineno}: imports go at the top of the module")
    code = "".join(source.splitlines(keepends=True)[end:]).strip("\n")
    return docstring, imports, code


def _allowed(module: str) -> bool:
    top = module.split(".")[0]
    return top in sys.stdlib_module_names or top in THIRD_PARTY


def build() -> str:
    """The text of verify_bundle.py."""
    plain: set[str] = set()
    froms: dict[str, set[str]] = {}
    sections: list[str] = []
    for position, name in enumerate(MODULES):
        docstring, imports, code = _split(name)
        for node in imports:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname or not _allowed(alias.name):
                        raise BuildError(f"audit/verification/{name}.py: import {alias.name}: the script imports only "
                                         "the standard library and cryptography, without renaming")
                    plain.add(alias.name)
                continue
            module = node.module or ""
            if module == "__future__":
                continue
            if module.startswith(OWN_PREFIX):
                earlier = module.removeprefix(OWN_PREFIX)
                if earlier not in MODULES[:position]:
                    raise BuildError(f"audit/verification/{name}.py: imports {module}, which does not come before it "
                                     f"in MODULES {MODULES}")
                continue
            if node.level or not _allowed(module) or any(alias.asname for alias in node.names):
                raise BuildError(f"audit/verification/{name}.py: from {module} import ...: the script imports only "
                                 "the standard library, cryptography and this package's modules, without renaming")
            froms.setdefault(module, set()).update(alias.name for alias in node.names)
        summary = "\n".join(f"# {line}".rstrip() for line in docstring.splitlines())
        rule = f"# -- audit/verification/{name}.py "
        sections.append(f"{rule}{'-' * max(3, WIDTH - len(rule))}\n{summary}\n\n{code}\n")
    standard = [f"import {m}" for m in sorted(plain)] + [
        _from_import(m, sorted(froms[m])) for m in sorted(froms) if m.split(".")[0] not in THIRD_PARTY]
    third = [_from_import(m, sorted(froms[m])) for m in sorted(froms) if m.split(".")[0] in THIRD_PARTY]
    head = "\n".join(standard) + ("\n\n" + "\n".join(third) if third else "")
    return HEADER + "\nfrom __future__ import annotations\n\n" + head + "\n\n\n" + "\n\n".join(sections)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write audit/verify_bundle.py from audit/verification/.")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if the file is not the build")
    args = parser.parse_args(argv)
    text = build()
    current = VERIFIER_SCRIPT.read_text(encoding="utf-8") if VERIFIER_SCRIPT.is_file() else None
    if args.check:
        if current != text:
            print(f"{VERIFIER_SCRIPT}: not the build of audit/verification/; run python -m audit.verification.build",
                  file=sys.stderr)
            return 1
        print(f"{VERIFIER_SCRIPT}: up to date")
        return 0
    if current != text:
        tmp = VERIFIER_SCRIPT.with_name(VERIFIER_SCRIPT.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(VERIFIER_SCRIPT)
    print(f"{VERIFIER_SCRIPT}: {'written' if current != text else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
