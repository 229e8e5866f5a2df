"""Ctrl-C during training: the first one asks the loop to checkpoint and stop at the next step boundary."""

from __future__ import annotations

import signal
from types import FrameType


class GracefulInterrupt:
    """While entered, the first SIGINT sets :attr:`requested` (the loop checkpoints at the next step boundary);
    a second one interrupts at once (``KeyboardInterrupt``). Outside the main thread no handler can be
    installed: Ctrl-C then behaves as usual."""

    def __init__(self) -> None:
        self.requested = False
        self._installed = False
        self._previous = signal.SIG_DFL

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            signal.signal(signal.SIGINT, self._previous)
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> GracefulInterrupt:
        previous = signal.getsignal(signal.SIGINT)
        try:
            signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread
            return self
        self._previous, self._installed = previous, True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False
