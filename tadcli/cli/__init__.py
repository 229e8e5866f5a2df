"""The ``tad`` command line: argument parsing and printing only.

Every command turns its options into one call of a service in :mod:`tadcli.services` and renders
the result. Errors that the user can fix (:class:`tadcli.errors.TadError`) become one line on stderr
and exit code 2; ``--debug`` shows the traceback instead.

Examples::

    tad prepare synthetic --out data/synthetic
    tad prepare thumos14 --annotations thumos14.json --videos videos/ --out data/thumos14
    tad presets list
    tad presets show giant-1536 --set train.epochs=5
    tad eval --predictions results.json --annotations thumos14.json --dataset thumos14
    tad profile-memory --preset giant-1536 --gpu A100-80GB

The package, one job per module:

- ``__init__``: the app, its root options (``--version``, ``--debug``) and the list of commands;
- :mod:`~tadcli.cli.commands`: the command functions (options -> one service call -> one renderer);
- :mod:`~tadcli.cli.options`: the options several commands share, and the core's enums they take;
- :mod:`~tadcli.cli.errors`: the one error mapper (exit codes 2, 1 and 130);
- :mod:`~tadcli.cli.render`: consoles, progress, one renderer per report;
- :mod:`~tadcli.cli.train_display`: the live display of ``tad train``;
- :mod:`~tadcli.cli._click`: usage errors as one line (the one place that knows Click's internals).
"""

from __future__ import annotations

import gc
from typing import Annotated

import typer

from tadcli import __version__
from tadcli.cli import commands
from tadcli.cli._click import OneLineUsageErrors
from tadcli.cli.errors import show_tracebacks, user_errors
from tadcli.cli.render import console

app = typer.Typer(
    cls=OneLineUsageErrors,
    name="tad",
    help="End-to-end temporal action detection (AdaTAD): find each action's start, end and class in a video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
presets_app = typer.Typer(help="List the shipped presets (the default) or show one fully resolved.")
app.add_typer(presets_app, name="presets")


def _version(value: bool) -> None:
    if value:
        console.print(f"tad {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks instead of one-line errors.")] = False,
) -> None:
    """End-to-end temporal action detection (AdaTAD)."""
    show_tracebacks(debug)
    from tadcli.data.video import configured_decoder

    with user_errors():
        configured_decoder()  # a TAD_DECODER that names no decoder (or decord, not installed) is said before any work


app.command()(commands.demo)
app.command()(commands.prepare)
app.command()(commands.train)
app.command("eval")(commands.eval_)
app.command()(commands.detect)
app.command()(commands.review)
app.command()(commands.extract)
app.command("profile-memory")(commands.profile_memory)
presets_app.callback(invoke_without_command=True)(commands.presets_root)
presets_app.command("list")(commands.presets_list)
presets_app.command("show")(commands.presets_show)


def main() -> None:
    """Entry point of the ``tad`` console script."""
    try:
        app()
    finally:
        # the command is over and its files are closed: the interpreter's last garbage collection would only
        # walk torch's modules, about a second after every command that imported them
        gc.freeze()
