"""``policy-server openapi``: write the OpenAPI document the app serves."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from policy_server.cli._base import load_settings, main


@main.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("openapi/openapi.json"),
    show_default=True,
    help="Where to write the spec (- for stdout).",
)
def openapi(output: Path) -> None:
    """Write the OpenAPI document the app serves."""
    from policy_server.app import create_app

    app = create_app(load_settings())
    text = json.dumps(app.openapi_schema.to_schema(), indent=2, ensure_ascii=False) + "\n"
    if str(output) == "-":
        sys.stdout.write(text)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}")
