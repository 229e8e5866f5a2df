"""Replacing a whole folder in one step: build the new content aside, swap it in only on success.

``tad prepare`` writes a dataset folder of several files (manifest, class list, reports, probe cache,
synthetic videos). Writing them one by one into the existing folder would leave a mix of old and new
files after a failure or a Ctrl-C. Instead::

    with staged_folder(out_dir) as staged:
        write_everything(staged.path)      # a fresh folder beside out_dir, on the same file system
        staged.commit()                    # out_dir now holds exactly the new content

Without :meth:`StagedFolder.commit` (an exception, a Ctrl-C, or a decision not to commit) the staged
folder is removed and ``out_dir`` is left exactly as it was. The swap is two renames, during which
Ctrl-C is held back until both are done; only a hard kill between them can leave the old content in
``.<name>.tad-old-*`` beside the target, with the new one in ``.<name>.tad-new-*``.

An operating-system error inside the block (a full disk, permission denied, ...) becomes one line
(:func:`tadcli.errors.os_error_line`) naming the file as it would have been in ``target``, not in the
staged folder, and saying that ``target`` was left as it was.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tadcli.errors import os_error_line
from tadcli.io.atomic import new_folder_mode

NEW_PREFIX = ".{name}.tad-new-"
OLD_PREFIX = ".{name}.tad-old-"


class StagedFolder:
    """A new, empty folder ``path`` beside ``target`` that :meth:`commit` puts in place of ``target``."""

    def __init__(self, target: str | Path) -> None:
        self.target = Path(target).absolute()
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(dir=self.target.parent, prefix=NEW_PREFIX.format(name=self.target.name)))
        os.chmod(self.path, new_folder_mode())  # what mkdir gives under the umask, not mkdtemp's rwx------
        self.committed = False

    def commit(self) -> None:
        """Replace ``target`` (if it exists, keeping its permission bits) by the staged folder."""
        old = None
        with _interrupts_held_back():
            if self.target.exists():
                os.chmod(self.path, stat.S_IMODE(self.target.stat().st_mode))  # the folder keeps its permissions
                old = Path(tempfile.mkdtemp(dir=self.target.parent, prefix=OLD_PREFIX.format(name=self.target.name)))
                os.rename(self.target, old / self.target.name)
            os.rename(self.path, self.target)
            self.committed = True
        if old is not None:
            shutil.rmtree(old)

    def discard(self) -> None:
        """Remove the staged folder (``target`` is untouched)."""
        shutil.rmtree(self.path, ignore_errors=True)


@contextmanager
def staged_folder(target: str | Path) -> Iterator[StagedFolder]:
    """A :class:`StagedFolder` for ``target``, removed on leaving unless committed.

    Raises:
        PathError, DiskFullError: an operating-system error in the block (``target`` is left as it was).
    """
    kept = f"{target} was left as it was" if Path(target).exists() else f"{target} was not written"
    try:
        staged = StagedFolder(target)
    except OSError as error:
        raise os_error_line(error, kept=kept) from None
    try:
        yield staged
    except OSError as error:
        raise os_error_line(error, _as_in_target(error.filename, staged), kept) from None
    finally:
        if not staged.committed:
            staged.discard()


def _as_in_target(filename: str | bytes | None, staged: StagedFolder) -> Path | None:
    """A file of the staged folder named as it would be in the target (other paths as they are)."""
    if filename is None:
        return None
    path = Path(os.fsdecode(filename)).absolute()
    try:
        return staged.target / path.relative_to(staged.path)
    except ValueError:
        return path


@contextmanager
def _interrupts_held_back() -> Iterator[None]:
    """Defer SIGINT (Ctrl-C) until the block is done, then raise it (main thread only: elsewhere
    Python delivers no signal anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
