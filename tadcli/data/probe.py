"""Video probing for ``tad prepare``: fps, frame count, duration, size, variable frame rate, display
rotation, and whether the first and last frames decode; in parallel, with a cache so that a re-run only
probes new or changed files. fps, frame count and duration are those of the reader's timeline
(:mod:`tadcli.data.timeline`): real seconds, also for a variable-frame-rate video.

A probe opens the file once with :func:`tadcli.data.video.open_video` (the configured decoder:
``$TAD_DECODER``, else decord when installed, else PyAV; PyAV for what decord cannot read) and decodes
frames ``0`` and ``num_frames - 1``: a file that opens but whose last frame does not decode would
otherwise fail in the middle of training. A file that holds fewer frames than its container declares (a
truncated download whose index survived) is readable, with a warning. The decoder that read each video
is recorded (``backend``); the probes of one call use one decoder choice, resolved in the calling thread.

The cache (``probe_cache.json`` in the prepared dataset folder) maps
``"<path>|<size in bytes>|<mtime in ns>"`` to the probe, so a replaced or modified file is probed
again; a cache written by an older tad (another ``PROBE_CACHE_VERSION``: probes without the frame-rate
and rotation fields) is not used. The path is relative to the cache's folder for files inside it (the synthetic videos), so a
dataset folder that is moved, or built aside and swapped in, keeps its cache; absolute otherwise.
It is written atomically.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

from tadcli.data.video import Backend, configured_decoder, decoder_version, open_video
from tadcli.errors import VideoError
from tadcli.io.jsonio import write_json_atomic
from tadcli.progress import ProgressCallback

PROBE_CACHE_VERSION = 4  # 4: variable_frame_rate, rotation; timeline fps, frames and duration
CACHE_SAVE_EVERY = 100  # probes between two saves of the cache during a long run


@dataclass(frozen=True)
class VideoProbe:
    """What probing found in one video file.

    ``error`` is ``None`` for a readable video; otherwise it says why the video cannot be used and
    the measured fields may be ``None``.
    """

    path: str  # absolute
    size: int  # bytes
    mtime_ns: int
    fps: float | None  # of the timeline: the nominal rate of a variable-frame-rate video
    num_frames: int | None  # frames of the timeline
    duration: float | None  # real seconds (constant rate: num_frames / fps)
    width: int | None  # of the upright frames
    height: int | None
    backend: str | None  # decoder that read it: "decord" or "pyav"
    error: str | None
    warning: str | None = None  # readable, but something looks wrong (a truncated file)
    variable_frame_rate: bool | None = None  # frames not evenly spaced in time
    rotation: int | None = None  # display rotation, degrees counter-clockwise (phone videos)

    @property
    def readable(self) -> bool:
        return self.error is None


@dataclass
class ProbeRun:
    """The probes of one call, keyed by absolute path, how many came from the cache, and the decoder used
    (``"decord 3.4.0"``: :func:`tadcli.data.video.decoder_version`)."""

    probes: dict[str, VideoProbe]
    probed: int
    from_cache: int
    decoder: str

    def videos_per_decoder(self) -> dict[str, int]:
        """Decoder -> readable videos it read (PyAV reads what decord cannot; a cached probe keeps its decoder)."""
        return dict(sorted(Counter(p.backend for p in self.probes.values() if p.backend is not None).items()))


def probe_video(path: str | Path, backend: Backend | None = None) -> VideoProbe:
    """Probe one video file with ``backend`` (``None``: the configured decoder); unreadable files give a probe
    with ``error`` set (never raise a :class:`VideoError`)."""
    path = Path(path).absolute()
    stat = path.stat()
    measured = dict(
        fps=None, num_frames=None, duration=None, width=None, height=None, backend=None, variable_frame_rate=None, rotation=None
    )
    warning = None
    try:
        reader = open_video(path, backend=backend)
        measured.update(fps=reader.fps, num_frames=reader.num_frames, duration=reader.duration)
        reader.get_frames([0, reader.num_frames - 1])
        # a failed decord read switches the reader to PyAV, whose frame count is the one that works
        measured.update(
            fps=reader.fps,
            num_frames=reader.num_frames,
            duration=reader.duration,
            width=reader.width,
            height=reader.height,
            backend=reader.backend,
            variable_frame_rate=reader.variable_frame_rate,
            rotation=reader.rotation,
        )
        if reader.declared_frames > reader.stored_frames:
            warning = (
                f"truncated at frame {reader.stored_frames} of the {reader.declared_frames} its container declares "
                "(an interrupted download?)"
            )
        error = None
    except VideoError as exc:
        error = str(exc).removeprefix(f"{path}: ")
    return VideoProbe(
        path=str(path), size=stat.st_size, mtime_ns=stat.st_mtime_ns, error=error, warning=warning, **measured
    )


def probe_videos(
    paths: Sequence[str | Path],
    cache_path: str | Path | None = None,
    workers: int = 2,
    progress: ProgressCallback | None = None,
    backend: Backend | None = None,
) -> ProbeRun:
    """Probe many videos in parallel threads, reusing cached probes of unchanged files.

    Args:
        paths: existing video files.
        cache_path: the probe cache file, read when present, saved every ``CACHE_SAVE_EVERY``
            probes and finally rewritten with the probes of ``paths`` alone; ``None`` for no cache.
        workers: probes running at once (decord and PyAV decode outside the GIL).
        progress: called as ``progress("probing videos", done, total)``.
        backend: the decoder (``None``: :func:`~tadcli.data.video.configured_decoder`); cached probes keep the
            decoder that read them.

    Returns:
        A :class:`ProbeRun` with one probe per path.
    """
    backend = configured_decoder(backend)
    files = [Path(p).absolute() for p in paths]
    cache_root = Path(cache_path).absolute().parent if cache_path is not None else None
    cached = _read_cache(Path(cache_path)) if cache_path is not None else {}
    probes: dict[str, VideoProbe] = {}
    to_probe = []
    for file in files:
        hit = cached.get(_cache_key(file, cache_root))
        if hit is not None:
            probes[str(file)] = dataclasses.replace(hit, path=str(file))
        else:
            to_probe.append(file)
    total, done = len(files), len(probes)
    if progress is not None:
        progress("probing videos", done, total)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for future in as_completed([pool.submit(probe_video, file, backend) for file in to_probe]):
            probe = future.result()
            probes[probe.path] = probe
            done += 1
            if progress is not None:
                progress("probing videos", done, total)
            if cache_path is not None and done % CACHE_SAVE_EVERY == 0:  # an interrupted run keeps its work
                _write_cache(Path(cache_path), {**cached, **_keyed(probes.values(), cache_root)})
    if cache_path is not None:
        _write_cache(Path(cache_path), _keyed(probes.values(), cache_root))
    return ProbeRun(
        probes=probes, probed=len(to_probe), from_cache=len(files) - len(to_probe), decoder=decoder_version(backend)
    )


def _cache_key(file: Path, cache_root: Path | None) -> str | None:
    try:
        stat = file.stat()
    except OSError:
        return None
    return _key(str(file), stat.st_size, stat.st_mtime_ns, cache_root)


def _key(path: str, size: int, mtime_ns: int, cache_root: Path | None) -> str:
    """``"<path>|<size>|<mtime>"``, the path relative to ``cache_root`` when the file lies inside it."""
    file = Path(path)
    if cache_root is not None and file.is_relative_to(cache_root):
        path = file.relative_to(cache_root).as_posix()
    return f"{path}|{size}|{mtime_ns}"


def _keyed(probes: Iterable[VideoProbe], cache_root: Path | None) -> dict[str, VideoProbe]:
    return {_key(p.path, p.size, p.mtime_ns, cache_root): p for p in probes}


def _read_cache(cache_path: Path) -> dict[str, VideoProbe]:
    """Cached probes by key; an unreadable or outdated cache is simply not used."""
    try:
        content = json.loads(cache_path.read_text())
        if content.get("version") != PROBE_CACHE_VERSION:
            return {}
        return {key: VideoProbe(**entry) for key, entry in content["probes"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def _write_cache(cache_path: Path, probes: dict[str, VideoProbe]) -> None:
    entries = {key: asdict(probe) for key, probe in probes.items()}
    write_json_atomic(cache_path, {"version": PROBE_CACHE_VERSION, "probes": entries}, indent=1)
