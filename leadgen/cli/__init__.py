"""The `leadgen` command. Each stage adds its commands from its own module in this package."""

from __future__ import annotations

import importlib
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


# Each module in leadgen/cli/ exposes COMMANDS; a stage adds its module name here.
COMMAND_MODULES = ["core", "pipeline", "demo"]
COMMAND_MODULES.append("report")  # report, export
COMMAND_MODULES.append("search")  # sync, queries preview
COMMAND_MODULES.append("serp")  # serp parse
COMMAND_MODULES.append("enrich")  # extract, enrich
COMMAND_MODULES.append("outreach")  # optout, outbox
COMMAND_MODULES.append("sandbox")  # sandbox up
COMMAND_MODULES.append("faults")  # faults run


def _register() -> None:
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"leadgen.cli.{name}")
        for command in module.COMMANDS:
            main.add_command(command)


_register()
