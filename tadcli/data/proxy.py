"""Proxy videos: each video of a prepared dataset transcoded once to what the presets read (``tad prepare --proxy``).

Decoding a 1080p or 60 fps source is most of a training step's time, while a 160-px preset reads a frame of
182 px (its training resize, :func:`tadcli.data.pipeline.train_transform`) and, on THUMOS14's protocol, every
4th frame. A proxy holds exactly that:

* **short side**: the largest that the chosen presets read (:func:`needed_short_side`: the training transform's
  resize, at least the crop): 182 px for 160-px presets, 256 for 224-px ones (the spec's rule); never larger
  than the source (no upscaling; sizes rounded to even numbers, as the encoder needs).
* **frame rate**: the source's divided by the *frame step*, the greatest common divisor of the presets' frame
  strides (:func:`needed_frame_step`; 1 for resize sampling, ActivityNet): proxy frame ``k`` is the picture of
  the source's timeline slot ``k * frame_step`` (:mod:`tadcli.data.timeline`; a variable-frame-rate source
  gives a constant-rate proxy of its real-time pictures), shown at the same second.
* **key frames** every :data:`KEYFRAME_INTERVAL` proxy frames (one ViT chunk), so a random window starts at
  most 15 frames after a key frame.
* H.264 (libx264, CRF 23, ``veryfast``) when PyAV's FFmpeg has it, else MPEG-4 Part 2
  (:func:`tadcli.data.synthetic.available_codec`); no audio; the originals are only read.

Times stay in the original video's seconds: a prepared dataset keeps each video's own duration, fps and frame
count and adds its proxy's (:class:`tadcli.data.prepared.ProxyFile`); read through the proxy, a window takes every
``frame_stride / frame_step``-th proxy frame at ``fps / frame_step`` frames per second, which are the same
seconds (:func:`proxy_use` decides whether a preset can read the proxies; :func:`tadcli.data.pipeline.window_geometry`
takes the step).

Files: ``<dataset>/proxies/<video id>.mp4`` and beside each a sidecar ``<video id>.json`` (:class:`ProxySidecar`):
the settings, the source's stat hash (size and modification time) and the proxy's size. A proxy counts as done
when its sidecar matches all three, so a re-run (after Ctrl-C, or with new videos) transcodes only what is
missing or whose source changed. Each proxy is written to a temporary file and renamed into place
(:func:`tadcli.io.atomic.atomic_path`), its sidecar after it. On Ctrl-C the transcoding processes (which ignore
it) are stopped and what they left is removed: no partial proxy, no proxy without its sidecar.
Videos are transcoded in parallel processes (:func:`build_proxies`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import signal
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from tadcli.config.profiles import DatasetProfile
from tadcli.data.prepared import PreparedDataset, ProxyFile, ProxySettings
from tadcli.errors import PresetError, VideoError
from tadcli.io.atomic import atomic_path
from tadcli.io.jsonio import write_json_atomic
from tadcli.progress import ProgressCallback

if TYPE_CHECKING:
    from tadcli.config.schema import Preset

PROXY_DIRNAME = "proxies"
KEYFRAME_INTERVAL = 16  # proxy frames between key frames: one ViT chunk
DECODE_CHUNK_FRAMES = 64  # source frames decoded at a time while transcoding
SIDECAR_VERSION = 1
# a source whose short side is at least this much larger than the presets need makes the training hint appear
HINT_SIZE_RATIO = 1.25


def needed_short_side(preset: Preset) -> int:
    """The short side (pixels) that ``preset``'s frames are read at: its training resize, at least its crop."""
    from tadcli.data.pipeline import train_transform  # torch: only when proxies are made or chosen

    transform = train_transform(preset)
    return max(transform.short_side or preset.input.image_size, preset.input.image_size)


def needed_frame_step(preset: Preset, profile: DatasetProfile) -> int:
    """Source frames per proxy frame that ``preset`` allows on ``profile``: its frame stride (1: resize sampling,
    which picks its own frames).

    Raises:
        PresetError: the preset's scale factor does not divide the profile's snippet stride.
    """
    from tadcli.data.pipeline import window_geometry

    geometry = window_geometry(preset, profile)
    return 1 if geometry.sampling == "resize" else geometry.frame_stride


def default_proxy_presets(profile: DatasetProfile) -> list[str]:
    """The shipped presets of ``profile``'s dataset (``tad presets list --dataset D``); for a dataset without its
    own (custom, synthetic), the presets made for any dataset (``tiny``)."""
    from tadcli.config.loader import load_preset, shipped_preset_names

    datasets = {name: load_preset(name).dataset for name in shipped_preset_names()}
    own = [name for name, dataset in datasets.items() if dataset == profile.name]
    return own or [name for name, dataset in datasets.items() if dataset is None]


def proxy_settings(presets: Sequence[str], profile: DatasetProfile) -> ProxySettings:
    """The proxy settings that serve every preset of ``presets`` (names or YAML paths) on ``profile``.

    Raises:
        PresetError: an unknown preset, or one that does not run on ``profile``'s protocol.
    """
    from tadcli.config.loader import load_preset
    from tadcli.data.synthetic import available_codec

    if not presets:
        raise PresetError(f"no preset to make proxies for on the {profile.name} protocol")
    loaded = [load_preset(name) for name in presets]
    return ProxySettings(
        folder=PROXY_DIRNAME,
        short_side=max(needed_short_side(preset) for preset in loaded),
        frame_step=math.gcd(*(needed_frame_step(preset, profile) for preset in loaded)),
        keyframe_interval=KEYFRAME_INTERVAL,
        codec=available_codec(),
        presets=[preset.name for preset in loaded],
    )


# ------------------------------------------------------------------------------------------ transcoding


def source_stat_hash(path: Path) -> str:
    """A hash of the source file's size and modification time: a replaced or edited source changes it."""
    stat = path.stat()
    return hashlib.sha256(f"{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ProxySidecar:
    """What ``<video id>.json`` beside a proxy records: the proxy is done when all of it still matches."""

    version: int
    settings: dict  # ProxySettings.fingerprint()
    source_stat: str  # source_stat_hash of the source when the proxy was made
    proxy_bytes: int  # the proxy file's size
    fps: float  # the proxy's timeline
    num_frames: int
    short_side: int  # of the proxy's frames


@dataclass(frozen=True)
class ProxyJob:
    """One video to transcode (picklable: it travels to a worker process)."""

    video_id: str
    source: Path
    destination: Path
    settings: ProxySettings
    source_short_side: int | None = None  # probed; None: read from the file


def proxy_path(folder: Path, video_id: str) -> Path:
    """``folder/<video id>.mp4`` (a path separator in an id becomes ``_``)."""
    return folder / f"{video_id.replace('/', '_').replace(os.sep, '_')}.mp4"


def _sidecar_path(proxy: Path) -> Path:
    return proxy.with_suffix(".json")


def finished_proxy(job: ProxyJob) -> ProxyFile | None:
    """The proxy of ``job`` when it is done (its sidecar matches the settings, the source and the file), else ``None``."""
    sidecar_file = _sidecar_path(job.destination)
    try:
        sidecar = ProxySidecar(**json.loads(sidecar_file.read_text()))
        size = job.destination.stat().st_size
    except (OSError, ValueError, TypeError):
        return None
    if (
        sidecar.version != SIDECAR_VERSION
        or sidecar.settings != job.settings.fingerprint()
        or sidecar.source_stat != source_stat_hash(job.source)
        or sidecar.proxy_bytes != size
    ):
        return None
    return ProxyFile(job.destination, sidecar.fps, sidecar.num_frames, sidecar.short_side)


def transcode_proxy(job: ProxyJob) -> ProxyFile:
    """Transcode one video to its proxy (written atomically, then its sidecar).

    Raises:
        VideoError: the source cannot be opened or decoded (nothing is left at the destination).
    """
    import numpy as np

    from tadcli.data.synthetic import write_mp4
    from tadcli.data.video import open_video

    settings = job.settings
    source_short_side = job.source_short_side
    if source_short_side is None:  # not probed (a dataset prepared by an older tad): one more opening
        reader = open_video(job.source)
        source_short_side = min(reader.height, reader.width)
    short_side = min(settings.short_side, source_short_side)  # never upscale
    short_side += short_side % 2  # yuv420p needs even sizes
    reader = open_video(job.source, short_side=None if short_side == source_short_side else short_side)
    slots = np.arange(0, reader.num_frames, settings.frame_step)
    rate = Fraction(reader.fps).limit_denominator(1_001_000) / settings.frame_step

    def frames():  # noqa: ANN202 - uint8 [H, W, 3] proxy frames in order
        for start in range(0, len(slots), DECODE_CHUNK_FRAMES):
            yield from reader.get_frames(slots[start : start + DECODE_CHUNK_FRAMES]).numpy()

    job.destination.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(job.destination) as temporary:
        write_mp4(temporary, frames(), rate, codec=settings.codec, keyframe_interval=settings.keyframe_interval)
        proxy = open_video(temporary)
        if proxy.num_frames != len(slots) or abs(proxy.fps * settings.frame_step / reader.fps - 1) > 1e-4:
            raise VideoError(
                f"{job.source}: its proxy reads as {proxy.num_frames} frames at {proxy.fps:g} fps, "
                f"expected {len(slots)} at {reader.fps / settings.frame_step:g}"
            )
        made = ProxyFile(job.destination, proxy.fps, proxy.num_frames, min(proxy.height, proxy.width))
    sidecar = ProxySidecar(
        SIDECAR_VERSION,
        settings.fingerprint(),
        source_stat_hash(job.source),
        job.destination.stat().st_size,
        made.fps,
        made.num_frames,
        made.short_side,
    )
    write_json_atomic(_sidecar_path(job.destination), asdict(sidecar), indent=1)
    return made


def _ignore_interrupts() -> None:
    """A transcoding process's start: Ctrl-C reaches the whole process group, and only the parent handles it
    (it stops the workers and tidies their folder, :func:`build_proxies`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _transcode_or_error(job: ProxyJob) -> tuple[str, ProxyFile | None, str | None]:
    """(video id, proxy, None) or (video id, None, why it failed): runs in a worker process."""
    import torch

    torch.set_num_threads(1)
    try:
        return job.video_id, transcode_proxy(job), None
    except VideoError as error:
        return job.video_id, None, str(error).removeprefix(f"{job.source}: ")


@dataclass
class ProxyRun:
    """What :func:`build_proxies` did: the proxy of each video, the videos it could not transcode (id -> why),
    and how many proxies were made now or found done."""

    proxies: dict[str, ProxyFile]
    failed: dict[str, str]
    made: int
    reused: int


def build_proxies(
    sources: dict[str, tuple[Path, int | None]],
    folder: Path,
    settings: ProxySettings,
    workers: int,
    progress: ProgressCallback | None = None,
) -> ProxyRun:
    """Transcode every video of ``sources`` (id -> file) into ``folder`` unless its proxy is done.

    Args:
        sources: the videos, by id: the file and its probed short side (``None``: unknown).
        folder: where the proxies go (created).
        settings: what every proxy holds.
        workers: transcodes running at once (processes).
        progress: called as ``progress("transcoding proxies", done, total)``.
    """
    jobs = [
        ProxyJob(video_id, path, proxy_path(folder, video_id), settings, short_side)
        for video_id, (path, short_side) in sources.items()
    ]
    proxies: dict[str, ProxyFile] = {}
    failed: dict[str, str] = {}
    to_make = []
    for job in jobs:
        done = finished_proxy(job)
        if done is None:
            to_make.append(job)
        else:
            proxies[job.video_id] = done
    reused = len(proxies)
    _remove_stale(folder, {job.destination for job in jobs})
    if progress is not None:
        progress("transcoding proxies", reused, len(jobs))
    if to_make:
        from tadcli.data.dataset import worker_context

        processes = max(1, min(workers, len(to_make)))
        pool = worker_context().Pool(processes, initializer=_ignore_interrupts)
        try:
            for video_id, proxy, error in pool.imap_unordered(_transcode_or_error, to_make):
                if proxy is not None:
                    proxies[video_id] = proxy
                else:
                    failed[video_id] = error
                if progress is not None:
                    progress("transcoding proxies", len(proxies) + len(failed), len(jobs))
        except BaseException:  # Ctrl-C: the running transcodes stop; the finished proxies stay
            pool.terminate()
            pool.join()
            _remove_unfinished(folder)
            raise
        pool.close()
        pool.join()
    return ProxyRun(proxies=proxies, failed=failed, made=len(to_make) - len(failed), reused=reused)


def _remove_unfinished(folder: Path) -> None:
    """Remove what stopped transcodes left: temporary files and proxies whose sidecar was not written."""
    for path in folder.glob(".*.tmp"):
        path.unlink(missing_ok=True)
    for proxy in folder.glob("*.mp4"):
        if not _sidecar_path(proxy).exists():
            proxy.unlink(missing_ok=True)


def _remove_stale(folder: Path, wanted: set[Path]) -> None:
    """Remove the proxies (and sidecars) of videos no longer in the dataset."""
    if not folder.is_dir():
        return
    keep = wanted | {_sidecar_path(path) for path in wanted}
    for entry in folder.iterdir():
        if entry.is_file() and entry not in keep:
            entry.unlink()


# ------------------------------------------------------------------------------------- reading proxies


@dataclass(frozen=True)
class ProxyUse:
    """Whether a run reads a dataset's proxies: ``frame_step`` source frames per proxy frame (1: originals), and a
    one-line ``note`` for the user (why the originals are read, or the hint to make proxies), else ``None``."""

    proxies: bool
    frame_step: int
    note: str | None


def proxy_use(dataset: PreparedDataset, preset: Preset) -> ProxyUse:
    """Read the proxies when the dataset has them and they hold what ``preset`` reads (its frame stride is a
    multiple of their frame step, its short side fits theirs or theirs is the source's); otherwise the originals,
    with a note saying why, or, without proxies, a hint when the sources are larger than ``preset`` needs."""
    profile = dataset.dataset_profile
    short_side, frame_step = needed_short_side(preset), needed_frame_step(preset, profile)
    settings = dataset.proxy
    if settings is None:
        return ProxyUse(False, 1, _hint(dataset, preset, short_side, frame_step))
    if frame_step % settings.frame_step:
        why = f"reads 1 frame in {frame_step}, they hold 1 in {settings.frame_step}"
    elif any(  # a proxy smaller than the preset reads, where its source is not as small itself
        video.proxy.short_side < min(short_side, video.short_side or short_side)
        for video in dataset.videos.values()
        if video.proxy is not None
    ):
        why = f"reads {short_side} px (short side), they hold {settings.short_side} px"
    else:
        return ProxyUse(True, settings.frame_step, None)
    note = (
        f"{dataset.root}: reading the original videos, not the proxies: preset '{preset.name}' {why} "
        f"(tad prepare --proxy --proxy-preset {preset.name} makes proxies for it)"
    )
    return ProxyUse(False, 1, note)


def _hint(dataset: PreparedDataset, preset: Preset, short_side: int, frame_step: int) -> str | None:
    """The one-line hint to make proxies, when the sources are larger or denser than ``preset`` reads."""
    sizes = [video.short_side for video in dataset.videos.values() if video.short_side is not None]
    larger = bool(sizes) and max(sizes) >= HINT_SIZE_RATIO * short_side
    if not larger and frame_step == 1:
        return None
    size = f"up to {max(sizes)} px (short side)" if sizes else "of unknown size"
    return (
        f"hint: the videos of {dataset.root} are {size}, every frame; preset '{preset.name}' reads {short_side} px "
        f"and 1 frame in {frame_step}: 'tad prepare ... --proxy' transcodes them once, for faster training "
        "(README: Proxy videos)"
    )
