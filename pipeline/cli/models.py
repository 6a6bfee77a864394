"""``docket models check``: which models the configured endpoint offers, and whether ``llm.model`` is one.

Mistral retires and renames models (issue 17, "The current Mistral models"): the preset's name is
taken from Mistral's docs, and this command is how to check it against ``GET /v1/models`` where a key
is present. Exit codes: 0 the model is offered and not deprecated; 1 it is not offered or deprecated;
2 nothing could be checked (no key for Mistral's API, or the endpoint's list could not be read).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from pipeline.cli.plumbing import FAILED, USAGE, JsonFlag, print_json, say_error

CANNOT_CHECK = USAGE
NOT_OFFERED = FAILED


def model_report(llm) -> dict[str, Any]:
    """What the endpoint lists and what that says of ``llm.model`` (one request, or none without a key)."""
    from pipeline.llm.client import MagistralReasoner, redact_base_url

    reasoner = MagistralReasoner(llm)
    models = reasoner.available_models()
    report: dict[str, Any] = {
        "provider": llm.provider,
        "base_url": redact_base_url(llm.resolved_base_url()),
        "model": llm.model,
        "checked": models.error is None,
        "offered": None,
        "deprecated": None,
        "models": models.ids,
        "deprecated_models": models.deprecated,
        "line": reasoner.check_model(models),
    }
    if models.error is None:
        report["offered"] = llm.model in models.ids
        report["deprecated"] = models.deprecated.get(llm.model)
    return report


def make_models_app(settings: Callable[[], Any]) -> typer.Typer:
    app = typer.Typer(help="Check the configured LLM model against the models the endpoint offers (GET /v1/models).", no_args_is_help=True)

    @app.command("check")
    def check(as_json: JsonFlag = False) -> None:
        """List the endpoint's models (GET /v1/models) and say whether llm.model is offered; exit 2 when it cannot be checked."""
        report = model_report(settings().llm)
        if as_json:
            print_json(report)
        else:
            typer.echo(f"endpoint: {report['base_url']} (provider {report['provider']})")
            typer.echo(f"model used: {report['model']} (llm.model / DOCKET_LLM_MODEL)")
            if report["checked"]:
                live = [m for m in report["models"] if m not in report["deprecated_models"]]
                typer.echo(f"offered ({len(live)}): {', '.join(live) or 'none'}")
                for name, when in sorted(report["deprecated_models"].items()):
                    typer.echo(f"deprecated: {name} ({when})")
        if not report["checked"]:
            say_error(f"cannot check: {report['line']}")
            raise typer.Exit(CANNOT_CHECK)
        if not as_json:
            typer.echo(report["line"])
        if not report["offered"] or report["deprecated"]:
            raise typer.Exit(NOT_OFFERED)

    return app
