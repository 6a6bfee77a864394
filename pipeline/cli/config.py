"""`docket config show`: the settings in force, secrets masked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console

from pipeline.cli.plumbing import JsonFlag, print_json

CONFIG_HELP = "Show the settings in force."

console = Console()


def make_config_app(get_settings: Callable[[], Any]) -> typer.Typer:
    """The `config` command group; ``get_settings`` is called when a command runs."""
    app = typer.Typer(help=CONFIG_HELP, no_args_is_help=True)

    @app.command("show")
    def config_show(as_json: JsonFlag = False) -> None:
        """The settings in force (secrets masked), with where the workspace is."""
        from pipeline.secrets import mask_url

        settings = get_settings()
        data = settings.public_dict()
        data["config_hash"] = settings.config_hash()
        data["resolved"] = {"registry_url": mask_url(settings.resolved_registry_url), "audit_url": mask_url(settings.resolved_audit_url)}
        if as_json:
            print_json(data)
        else:
            import yaml

            console.print(yaml.safe_dump(data, sort_keys=False), highlight=False)

    return app
