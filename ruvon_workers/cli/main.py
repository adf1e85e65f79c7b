"""Entry point of the ``ruvon-workers`` command."""

from __future__ import annotations

import click

from .. import __version__
from ..utils.loop import install_uvloop
from .bench import bench
from .db import db
from .definitions import validate
from .demo import demo
from .fleet import health, worker
from .monitoring import flower, metrics
from .server import server
from .workflows import (
    cancel,
    dead_letters,
    list_,
    logs,
    resume,
    retry,
    schedules,
    show,
    start,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ruvon-workers")
def cli() -> None:
    """Ruvon Workers: durable workflows on a Celery fleet, state in PostgreSQL."""


for command in (validate, db, demo, bench, worker, health, start, show, list_, resume, retry,
                cancel, logs, dead_letters, schedules, flower, metrics, server):
    cli.add_command(command)


def main() -> None:
    install_uvloop()  # RUVON_USE_UVLOOP; importing the package does not
    cli(prog_name="ruvon-workers")


if __name__ == "__main__":
    main()
