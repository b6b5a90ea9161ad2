"""The `plinth` command line (typer)."""

from __future__ import annotations

import logging
import os

import typer

from plinth import __version__

app = typer.Typer(
    name="plinth",
    help="plinth: LLM inference and serving with pluggable accelerators.",
    no_args_is_help=True,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"plinth {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    level = os.environ.get("PLINTH_LOGGING_LEVEL", "WARNING").upper()
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


@app.command()
def platforms() -> None:
    """List installed platform plugins, their probe results and capabilities."""
    from plinth_serve.platforms_cmd import render_platform_table

    typer.echo(render_platform_table())


def _register() -> None:
    from plinth_serve.bench_cmd import bench_app
    from plinth_serve.generate_cmd import generate
    from plinth_serve.serve_cmd import serve

    app.command(no_args_is_help=False)(serve)
    app.command()(generate)
    app.add_typer(bench_app, name="bench")


_register()


def main() -> None:
    """Console entry point: user errors (bad device, config, model path) print one clear line."""
    from plinth.platform import PlatformSelectionError

    try:
        app()
    except (PlatformSelectionError, ValueError, FileNotFoundError, ImportError) as exc:
        typer.echo(f"plinth: error: {exc}", err=True)
        raise SystemExit(2) from None
