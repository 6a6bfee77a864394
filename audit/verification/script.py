"""The auditor's command line: ``python verify_bundle.py BUNDLE --trust KEY [--checkpoint MINE.json]
[--json]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from audit.verification.hostile_files import BundleFileError
from audit.verification.bundle import BundleReport, verify_bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify a Docket audit export bundle offline.")
    parser.add_argument("bundle", type=Path, nargs="?", default=Path(__file__).resolve().parent)
    parser.add_argument("--checkpoint", type=Path, help="a checkpoint file you kept, to compare with the bundle")
    parser.add_argument(
        "--trust", action="append", default=[], metavar="KEY",
        help="the log's public key (PEM or hex file) or key id, as its owner gave it to you; repeatable",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    try:
        report = verify_bundle(args.bundle, args.checkpoint, args.trust)
    except BundleFileError as error:  # a --trust value that is no key
        print(f"error: --trust {error}", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as error:
        # Fail closed on anything the checks above did not foresee, naming it, never with a traceback.
        report = BundleReport(problems=[f"{args.bundle}: cannot be checked as a bundle ({type(error).__name__}: {error})"])
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        for warning in report.warnings:  # stdout holds the JSON alone
            print(f"WARNING {warning}", file=sys.stderr)
        return 0 if report.ok else 1
    for problem in report.problems:
        print(f"FAIL {problem}")
    if report.ok:
        pinned = f", signed by pinned key {', '.join(report.pinned)}" if report.pinned else ""
        print(f"OK {args.bundle}: every file and entry matches the signed manifest and checkpoint{pinned}")
    for warning in report.warnings:  # last, where it is read
        print(f"WARNING {warning}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
