"""The one place that reaches into Click's internals: usage errors as one line on stderr.

Isolated here so that a Typer or Click upgrade touches one file.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer
from rich.text import Text
from typer import rich_utils
from typer.core import TyperGroup

from tadcli.cli.render import err_console

# Click's exceptions, wherever this Typer takes Click from (newer releases carry their own copy)
_click_errors = importlib.import_module(typer.BadParameter.__module__)
_NoArgsIsHelp = getattr(_click_errors, "NoArgsIsHelpError", ())  # Click >= 8.2


class OneLineUsageErrors(TyperGroup):
    """The ``tad`` group: a bad option or value (``--frames abc``, ``--bogus``) is one line on stderr and exit code
    2, as tad's own errors are, instead of Typer's usage box."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)  # an Exit's code, else None
        except _NoArgsIsHelp as error:  # 'tad' alone: the help, as Typer shows it
            rich_utils.rich_format_error(error)
            sys.exit(error.exit_code)
        except _click_errors.UsageError as error:
            hint = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
            err_console.print(Text.assemble(("error:", "bold red"), f" {error.format_message()}{hint}"))
            sys.exit(error.exit_code)
        except _click_errors.ClickException as error:
            err_console.print(Text.assemble(("error:", "bold red"), f" {error.format_message()}"))
            sys.exit(error.exit_code)
        except typer.Abort:  # Ctrl-C or end of input at a prompt
            err_console.print(Text("aborted", style="bold red"))
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)
