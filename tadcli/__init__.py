"""tad: end-to-end temporal action detection (AdaTAD) from the command line and from Python."""

from __future__ import annotations

__version__ = "0.1.0"
