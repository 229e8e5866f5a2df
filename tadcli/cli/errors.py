"""The one error mapper of every command: what the user can fix is one line on stderr and an exit code.

- :class:`tadcli.errors.TadError` and what the machine did (an ``OSError`` on a path, a decoding worker
  killed: :func:`tadcli.errors.user_error`): ``error: ...`` and the error's exit code (2; 1 for a full disk);
- :class:`tadcli.errors.TrainingInterrupted` (Ctrl-C during training; a resumable checkpoint was written):
  its message, which says how to resume, and exit code 130;
- ``KeyboardInterrupt`` anywhere else: ``interrupted`` and exit code 130.

``--debug`` (:func:`show_tracebacks`) re-raises instead, so that the traceback shows (not for a training
interruption, which is not an error).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.text import Text

from tadcli.cli.render import err_console
from tadcli.errors import TadError, TrainingInterrupted, user_error

INTERRUPTED_EXIT_CODE = 130


class _Tracebacks:
    shown = False


def show_tracebacks(shown: bool) -> None:
    """``--debug``: let errors through with their traceback instead of one line."""
    _Tracebacks.shown = shown


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a :class:`TadError` into one line and its exit code (2; 1 for a disk that filled up), and what
    the machine did (an ``OSError`` on a path, a decoding worker killed: :func:`tadcli.errors.user_error`)
    likewise; an interrupted training into its message and exit code 130; Ctrl-C into exit code 130 (a
    traceback only with --debug)."""
    try:
        yield
    except (TadError, OSError, RuntimeError) as exc:
        error = user_error(exc)
        if error is None or _Tracebacks.shown:
            raise
        err_console.print(Text.assemble(("error:", "bold red"), f" {error}"))
        raise typer.Exit(code=error.exit_code) from None
    except TrainingInterrupted as interrupted:  # its message says where the checkpoint is and how to resume
        err_console.print(str(interrupted))
        raise typer.Exit(code=INTERRUPTED_EXIT_CODE) from None
    except KeyboardInterrupt:
        if _Tracebacks.shown:
            raise
        err_console.print(Text("interrupted", style="bold red"))  # what a command writes is staged or atomic
        raise typer.Exit(code=INTERRUPTED_EXIT_CODE) from None
