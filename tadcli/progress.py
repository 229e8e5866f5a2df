"""The one progress-callback type that long operations of the core and the services accept.

A callback is called as ``progress(description, done, total)``: ``description`` names the task ("windows",
"probing videos"), ``done`` of ``total`` units are finished. The CLI renders it as a bar on a terminal and
as plain lines in a log; library callers pass any function of that shape, or nothing.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[str, int, int], None]
