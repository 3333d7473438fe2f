"""The `leadgen` command. Each stage adds its commands from its own module in this package."""

from __future__ import annotations

import sys

import click

from leadgen.config import ConfigError


class Main(click.Group):
    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except ConfigError as exc:  # a bad setting: a clear message, no traceback
            click.echo(f"leadgen: {exc}", err=True)
            sys.exit(2)


@click.group(cls=Main)
@click.version_option(package_name="leadgen")
def main() -> None:
    """Lead generation and cold outreach: sheet → Yandex → sites → emails."""


def _register() -> None:
    from leadgen.cli import core

    for command in core.COMMANDS:
        main.add_command(command)
    # Stage modules register theirs below (one import each).


_register()
