"""The audit log's verification core: the Python standard library and `cryptography`, nothing else.

``audit.log`` verifies through these modules, and ``audit/verify_bundle.py``, the one file an auditor
runs on a bundle, is built from them (``python -m audit.verification.build``), so what the auditor
runs is the code Docket runs; the library never imports that script. In build order:

- ``formats``: format identifiers and constants; ``jcs``: canonical JSON (RFC 8785, float-free);
- ``tree``: RFC 9162 hashing, the frontier, inclusion and consistency proof checks;
- ``entries``: the leaf encoding, payload commitments, checkpoint and key messages, signatures;
- ``chain``: ``ChainVerifier``, the one-pass check of a stream of entries, and ranges of it;
- ``hostile_files``: bounded, strict reading of the files an auditor was handed;
- ``trust``: the keys an auditor trusts; ``bundle``: ``verify_bundle``; ``script``: the command line.

A module here imports only the standard library, `cryptography` and the modules before it
(tests/test_verify_bundle_source.py checks that, and that the script is the build of them).
Importing this package loads none of them.
"""

from pathlib import Path

MODULES = ("formats", "jcs", "tree", "entries", "chain", "hostile_files", "trust", "bundle", "script")
# The file a bundle ships and `docket audit verifier` prints the SHA-256 of.
VERIFIER_SCRIPT = Path(__file__).resolve().parent.parent / "verify_bundle.py"
