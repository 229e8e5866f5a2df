"""Random-access video reading with one of two decoders, decord or PyAV, each video opened once.

``open_video(path)`` returns a :class:`VideoReader` that knows the video's ``fps``, ``num_frames`` and
``duration`` and decodes any set of frame indices with ``get_frames(indices)`` into a uint8 tensor
``[T, H, W, 3]`` (RGB, frames in the order of ``indices``, repeated indices allowed). That layout is what
both decoders produce, so no copy is made here; the spatial transforms turn it into ``[T, 3, H, W]``.

Which decoder (:func:`configured_decoder`): the ``backend`` argument, else the environment variable
``TAD_DECODER`` (``decord`` or ``pyav``; every command honours it, ``--decoder`` sets it for one command),
else decord when it is installed (the ``decord2`` package, or the old ``decord`` 0.6), else PyAV. With
decord, a file that decord cannot read (below) is read with PyAV (``pyav_fallback``); the reader's
``backend`` says which decoder reads it.

One open per video: the container is opened once, with PyAV, which reads its header (size, display
rotation from the first decoded frame, the frame count the container declares) and recognises broken
files with readable messages (:func:`_open_container`: FFmpeg's own logging stays silent). The PyAV decoder
then keeps that container: the packets' presentation times and key frames are read on from where the
header left off, once, and seeking reuses them. The decord decoder opens the file itself, once, already at
the output size (known from the header), and the PyAV container is closed. Nothing is reopened unless a
decord read fails (the reader then switches to PyAV for good).

Frame index ``i`` is slot ``i`` of the video's constant-rate timeline (:mod:`tadcli.data.timeline`): the
picture shown ``i / fps`` seconds after the first frame, read from the frames' presentation times, so
that indices are real seconds even in a variable-frame-rate video. For a constant-rate video, slot ``i``
is the ``i``-th frame in presentation order, the convention of decord (and of the annotation ``frame``
counts of OpenTAD, spec §6.3). The PyAV decoder builds the same table from the packets' timestamps, so
both decoders return identical frames for the same index at the source size (checked in the tests).

Frames come out upright, as players show them: a video whose stream carries a display rotation (phone
videos: 90, 180 or 270 degrees) is read with PyAV and its frames are turned. decord is not used for such
files, because it applies some rotations itself and returns corrupt frames for others. Neither is decord2
(decord 1.0 and later) used for output widths it returns malformed (its rows are padded to 64 pixels and
a width that divides three padded rows is taken for a frame with more channels: widths 8-48, 96 and 144).

``short_side`` asks the decoder itself to scale frames so that their short side has that many pixels
(aspect ratio kept, sizes rounded to even numbers). Scaling inside the decoder is several times faster
than converting full-resolution frames to RGB and resizing them afterwards, and it is step 1 of the
training and evaluation pipelines (spec §6.4: "Resize short side"). The decoders scale with different
filters (decord 0.6 and PyAV bilinear, decord2 bicubic), so scaled frames differ by a few grey levels
between them (measured in the tests and in BENCHMARKS.md); at the source size they are identical.

A reader keeps the file open; open one per DataLoader worker (see ``tadcli.data.dataset``), never share
one across processes.

:data:`VIDEO_EXTENSIONS` are the files taken for videos where a folder is searched (``tad prepare``,
``tad detect``, ``tad extract``: :func:`expand_video_inputs`).
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal

import numpy as np

from tadcli.data.timeline import Timeline, presentation_timeline
from tadcli.errors import TadError, VideoError

if TYPE_CHECKING:
    import av
    import torch

logger = logging.getLogger(__name__)

Backend = Literal["decord", "pyav"]
DECODERS: tuple[Backend, ...] = ("decord", "pyav")
DECODER_ENV = "TAD_DECODER"  # the decoder every command uses: decord or pyav

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm")

HEADER_PACKETS = 64  # packets read at most to decode the first frame (display rotation) when opening


def decord_installed() -> bool:
    """Whether ``import decord`` finds a module (``decord2`` or the old ``decord``), without importing it."""
    try:
        return importlib.util.find_spec("decord") is not None
    except ValueError:  # sys.modules["decord"] is None (tests hide it so)
        return False


def import_decord() -> ModuleType:
    """The ``decord`` module, imported without the CUDA libraries of the ``nvidia`` pip packages.

    On import, decord2 loads every shared library of the ``nvidia`` packages (for its CUDA build) into the
    process's global symbol table. With a CUDA build of torch installed those include ``libnvblas``, which then
    takes over the BLAS calls of the whole process and crashes the first CPU matrix product (``[NVBLAS] CPU Blas
    library need to be provided``, then a segmentation fault). tad decodes on the CPU: decord's import is shown
    no ``nvidia`` package. Every import of decord in tad goes through here.

    Raises:
        ImportError: decord is not installed.
    """
    if "decord" in sys.modules and sys.modules["decord"] is not None:
        return sys.modules["decord"]
    find_spec = importlib.util.find_spec

    def without_nvidia(name: str, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - find_spec's signature
        return None if name == "nvidia" else find_spec(name, *args, **kwargs)

    importlib.util.find_spec = without_nvidia
    try:
        import decord
    finally:
        importlib.util.find_spec = find_spec
    return decord


def configured_decoder(backend: str | None = None, *, given_as: str = "backend") -> Backend:
    """The decoder to read videos with: ``backend`` if given, else ``$TAD_DECODER``, else decord when it is
    installed, else PyAV. ``given_as`` names ``backend`` in messages (``"--decoder"`` for the CLI option).

    Raises:
        TadError: the name is not ``decord`` or ``pyav`` (the message names the valid ones), or decord is asked
            for and not installed.
    """
    source = given_as if backend is not None else DECODER_ENV
    name = backend if backend is not None else os.environ.get(DECODER_ENV, "").strip()
    if not name:
        return "decord" if decord_installed() else "pyav"
    if name not in DECODERS:
        raise TadError(f"{source}={name!r}: unknown video decoder; use one of: {', '.join(DECODERS)}")
    if name == "decord" and not decord_installed():
        raise TadError(
            f"{source}=decord: decord is not installed (pip install decord2; it has no wheels for every platform), "
            f"or use {DECODER_ENV}=pyav"
        )
    return name


def use_decoder(backend: str) -> Backend:
    """Make ``backend`` the decoder of this process and of the processes it starts (sets ``$TAD_DECODER``).

    Raises:
        TadError: as :func:`configured_decoder`.
    """
    name = configured_decoder(backend, given_as="--decoder")
    os.environ[DECODER_ENV] = name
    return name


def decoder_version(backend: Backend) -> str:
    """``"decord 3.4.0"`` / ``"pyav 18.1.0"``: the decoder and its installed version."""
    if backend == "decord":
        return f"decord {import_decord().__version__}"
    import av

    return f"pyav {av.__version__}"


def expand_video_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Files as given, folders searched recursively for video files (sorted), glob patterns expanded (sorted).

    Raises:
        TadError: an input matches nothing, or nothing is left.
    """
    videos: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
            if not found:
                raise TadError(f"{path}: the folder holds no video file ({', '.join(VIDEO_EXTENSIONS)})")
            videos.extend(found)
        elif path.exists():
            videos.append(path)
        elif glob.has_magic(str(item)):
            matches = sorted(Path(p) for p in glob.glob(str(item), recursive=True) if Path(p).is_file())
            if not matches:
                raise TadError(f"{item}: the pattern matches no file")
            videos.extend(matches)
        else:
            raise TadError(f"{path}: video not found")
    if not videos:
        raise TadError("no video given")
    return videos


def scaled_size(height: int, width: int, short_side: int | None) -> tuple[int, int]:
    """Output size ``(height, width)`` of a frame whose short side is scaled to ``short_side``.

    Args:
        height: source frame height in pixels.
        width: source frame width in pixels.
        short_side: target length of the shorter side, or ``None`` to keep the source size.

    Returns:
        ``(height, width)``; the long side keeps the aspect ratio and is rounded to an even number
        (what video scalers require); the short side is exactly ``short_side``.
    """
    if short_side is None:
        return height, width
    if height <= width:
        return short_side, max(2, 2 * round(width * short_side / height / 2))
    return max(2, 2 * round(height * short_side / width / 2)), short_side


class _Container:
    """A video file opened once with PyAV: its header, the display rotation, and the packets read so far.

    Opening decodes the first frame (the display rotation rides on decoded frames) and keeps the
    presentation times and key frames of the packets read for it; :meth:`read_index` reads the rest.

    Raises:
        VideoError: the file is empty, not a video container, an MP4 without its index, without a video
            stream or without a single frame.
    """

    def __init__(self, path: Path, num_threads: int) -> None:
        self.path = path
        self.container = _open_container(path)
        try:
            if not self.container.streams.video:
                raise VideoError(f"{path}: the container holds no video stream")
            self.stream = self.container.streams.video[0]
            self.stream.thread_type = "AUTO"
            if num_threads > 0:
                self.stream.codec_context.thread_count = num_threads
            self.declared_frames = self.stream.frames  # 0 when the container does not say
            self.stored_height = self.stream.codec_context.height
            self.stored_width = self.stream.codec_context.width
            self._packets = self.container.demux(self.stream)
            self._frame_pts: list[int] = []
            self._keyframe_pts: list[int] = []
            self._read_all = False
            self.rotation = self._first_frame_rotation()
            if not self._frame_pts:
                raise VideoError(
                    f"{path}: truncated at frame 0 of the {self.declared_frames} its container declares "
                    "(an interrupted download?)"
                )
        except BaseException:
            self.container.close()
            raise

    def _first_frame_rotation(self) -> int:
        """Degrees (0, 90, 180, 270, counter-clockwise) by which players turn the frames: the display matrix
        FFmpeg attaches to decoded frames (phone videos); 0 when no frame decodes (reads then say why)."""
        import av

        try:
            for packet in self._take_packets(HEADER_PACKETS):
                for frame in packet.decode():
                    return self._first_frame(frame)
            if self._read_all:  # a short video: its frames are still in the (frame-threaded) decoder
                for frame in self.stream.decode(None):
                    return self._first_frame(frame)
        except av.FFmpegError:
            pass
        return 0

    def _first_frame(self, frame: av.VideoFrame) -> int:
        """The rotation of the first decoded frame; its size is the stored size the decoders return."""
        self.stored_height, self.stored_width = frame.height, frame.width
        return round(frame.rotation / 90) % 4 * 90

    def _take_packets(self, limit: int | None) -> Iterator[av.Packet]:
        """The next packets of the video stream (at most ``limit``), their timestamps recorded."""
        taken = 0
        for packet in self._packets:
            if packet.pts is None:  # the flushing packet at the end of the stream
                continue
            self._frame_pts.append(packet.pts)
            if packet.is_keyframe:
                self._keyframe_pts.append(packet.pts)
            yield packet
            taken += 1
            if limit is not None and taken >= limit:
                return
        self._read_all = True

    def read_index(self) -> tuple[np.ndarray, np.ndarray]:
        """int64 presentation timestamps of every frame and of the key frames, sorted (presentation order)."""
        if not self._read_all:
            for _ in self._take_packets(None):
                pass
        frame_pts = np.sort(np.asarray(self._frame_pts, dtype=np.int64))
        keyframe_pts = np.sort(np.asarray(self._keyframe_pts or self._frame_pts[:1], dtype=np.int64))
        return frame_pts, keyframe_pts

    def close(self) -> None:
        self.container.close()


def _open_container(path: Path) -> av.container.InputContainer:
    """``av.open(path)``; a file that no decoder can open is a :class:`VideoError` saying why in a few words
    (PyAV's FFmpeg is silent; decord's C++ code would print its errors to stderr)."""
    import av

    size = path.stat().st_size
    if size == 0:
        raise VideoError(f"{path}: empty file (0 bytes)")
    try:
        return av.open(str(path))
    except av.FFmpegError as error:
        with path.open("rb") as handle:
            head = handle.read(12)
        if head[4:8] == b"ftyp":  # an MP4 / MOV that starts right
            problem = f"MP4 without its index (moov atom), {size} bytes: truncated (an interrupted download?) or corrupt"
        else:
            problem = f"not a video container (FFmpeg: {error.strerror or error})"
        raise VideoError(f"{path}: {problem}") from None


def _decord_malformed_width(width: int) -> bool:
    """Whether decord2 returns frames of ``width`` malformed: it pads rows to 64 pixels and takes a width that
    divides three padded rows for a frame with more than 3 channels (8 ... 48, 96, 144)."""
    padded = -(-width // 64) * 64
    return width % 64 != 0 and 3 * padded % width == 0


class _DecordDecoder:
    """Frames through ``decord.VideoReader.get_batch`` (accurate seeking), opened once at the output size."""

    name = "decord"

    def __init__(self, path: Path, height: int, width: int, num_threads: int, scaled: bool) -> None:
        decord = import_decord()  # optional dependency: not available on every platform

        if not decord.__version__.startswith("0.") and _decord_malformed_width(width):
            raise ValueError(f"decord {decord.__version__} returns malformed frames {width} pixels wide")
        decord.logging.set_level(decord.logging.QUIET)  # its FFmpeg would print to stderr
        size = dict(width=width, height=height) if scaled else {}
        self._reader = decord.VideoReader(str(path), num_threads=num_threads, **size)
        self.height, self.width = height, width
        self.num_frames = len(self._reader)
        self.fps = float(self._reader.get_avg_fps())
        self.frame_times = self._reader.get_frame_timestamp(np.arange(self.num_frames))[:, 0]  # float32 [N] seconds

    def get_frames(self, indices: np.ndarray) -> np.ndarray:
        return self._reader.get_batch(indices.tolist()).asnumpy()


class _PyAVDecoder:
    """Frames through PyAV: seek to the key frame before each wanted frame, decode forward.

    It keeps the opened container; the presentation-order frame table (timestamp of every frame, key
    frames) is read from its packets once, without decoding, so indices mean the same as decord's. Frames
    of a rotated video are decoded at the stored orientation and turned by its rotation counter-clockwise.
    """

    name = "pyav"

    def __init__(self, opened: _Container, short_side: int | None) -> None:
        self._container = opened.container
        self._stream = opened.stream
        self._frame_pts, self._keyframe_pts = opened.read_index()
        self._index_of_pts = {int(pts): i for i, pts in enumerate(self._frame_pts)}
        self.num_frames = len(self._frame_pts)
        rate = self._stream.average_rate or self._stream.guessed_rate
        if rate is None:
            span = Fraction(int(self._frame_pts[-1] - self._frame_pts[0])) * self._stream.time_base
            rate = Fraction(max(self.num_frames - 1, 1)) / span
        self.fps = float(rate)
        # float32 seconds, computed as decord computes them, so both decoders build the same timeline
        self.frame_times = (self._frame_pts * float(self._stream.time_base)).astype(np.float32)
        self._quarter_turns = opened.rotation // 90
        stored_height, stored_width = opened.stored_height, opened.stored_width
        if self._quarter_turns % 2:  # upright, the stored frame's width is its height
            stored_height, stored_width = stored_width, stored_height
        self.height, self.width = scaled_size(stored_height, stored_width, short_side)
        # the size to scale the stored (not yet turned) frames to
        self._stored_size = (self.width, self.height) if self._quarter_turns % 2 else (self.height, self.width)

    def get_frames(self, indices: np.ndarray) -> np.ndarray:
        wanted = np.unique(indices)
        decoded: dict[int, np.ndarray] = {}
        position = -1  # index of the last decoded frame, -1 before any seek
        frames = iter(())
        for index in wanted.tolist():
            target_pts = int(self._frame_pts[index])
            keyframe = int(self._keyframe_pts[np.searchsorted(self._keyframe_pts, target_pts, "right") - 1])
            if position < 0 or position >= index or self._index_of_pts[keyframe] > position + 1:
                self._container.seek(keyframe, stream=self._stream, backward=True, any_frame=False)
                frames = self._container.decode(self._stream)
            for frame in frames:
                position = self._index_of_pts.get(frame.pts, position)
                if position == index:
                    height, width = self._stored_size
                    image = frame.to_ndarray(format="rgb24", width=width, height=height)  # [H, W, 3] as stored
                    decoded[index] = np.rot90(image, self._quarter_turns)  # upright, counter-clockwise turns
                    break
            if index not in decoded:
                raise ValueError(f"frame {index} could not be decoded")
        return np.stack([decoded[i] for i in indices.tolist()])


def _decode_slots(decoder: _DecordDecoder | _PyAVDecoder, timeline: Timeline, slots: np.ndarray) -> np.ndarray:
    """Frames ``[T, H, W, 3]`` of timeline ``slots``; a frame that fills several slots (a sparse or frozen
    stretch of a variable-frame-rate video) is decoded once."""
    if not timeline.variable_frame_rate:
        return decoder.get_frames(slots)  # slot k is frame k
    frames, inverse = np.unique(timeline.source_frames(slots), return_inverse=True)
    return decoder.get_frames(frames)[inverse.reshape(-1)]


class VideoReader:
    """An open video with random access to its frames.

    Args:
        path: the video file.
        short_side: scale frames in the decoder so that their short side has this many pixels
            (``None``: source size).
        backend: ``"decord"`` or ``"pyav"``; ``None``: :func:`configured_decoder` (``$TAD_DECODER``, else
            decord when installed, else PyAV).
        num_threads: decoder threads (0: the decoder's default).
        pyav_fallback: with decord, read a file that decord refuses (rotated, a width decord2 malforms) or
            cannot open with PyAV, and retry a failed decord read with PyAV (the reader then stays on PyAV);
            ``False``: such a file is a :class:`VideoError`.

    Raises:
        VideoError: the file is missing, cannot be opened by the decoder(s), or has no frames.
        TadError: ``backend`` (or ``$TAD_DECODER``) names no decoder, or decord is asked for and not installed.

    Attributes:
        path, fps (frames per second of the timeline), num_frames (frames of the timeline: a
        constant-rate video's frames in presentation order), duration (real seconds; constant rate:
        ``num_frames / fps``), variable_frame_rate (frames are not evenly spaced in time), rotation
        (degrees counter-clockwise by which the stored frames are turned upright), height and width (of
        the returned, upright frames), declared_frames (the frame count the container declares, 0 when
        it does not), backend (the decoder in use: ``"decord"`` or ``"pyav"``).
    """

    def __init__(
        self,
        path: str | Path,
        short_side: int | None = None,
        backend: Backend | None = None,
        num_threads: int = 0,
        pyav_fallback: bool = True,
    ) -> None:
        self.path = Path(path)
        self._short_side = short_side
        self._num_threads = num_threads
        backend = configured_decoder(backend)
        self._fallback_allowed = pyav_fallback and backend == "decord"
        if not self.path.is_file():
            raise VideoError(f"{self.path}: video file not found")
        opened = _Container(self.path, num_threads)
        self.rotation = opened.rotation
        self.declared_frames = opened.declared_frames
        try:
            self._decoder = self._open_decoder(opened, backend)
        except BaseException:
            opened.close()
            raise
        if self._decoder.name != "pyav":
            opened.close()  # decord reads the file through its own
        if self._decoder.num_frames <= 0 or self._decoder.fps <= 0:
            raise VideoError(
                f"{self.path}: video has no frames (frames={self._decoder.num_frames}, fps={self._decoder.fps})"
            )
        self._timeline = presentation_timeline(self._decoder.frame_times, self._decoder.fps)

    def _open_decoder(self, opened: _Container, backend: Backend) -> _DecordDecoder | _PyAVDecoder:
        """The decoder of ``backend`` for the opened file (decord opens the file itself, PyAV keeps ``opened``)."""
        decord_error = ""
        if backend == "decord":
            try:
                if opened.rotation:
                    raise ValueError(f"a video rotated by {opened.rotation} degrees (decord does not turn it upright reliably)")
                height, width = scaled_size(opened.stored_height, opened.stored_width, self._short_side)
                scaled = (height, width) != (opened.stored_height, opened.stored_width)
                return _DecordDecoder(self.path, height, width, self._num_threads, scaled)
            except Exception as error:  # decord raises its own types (DECORDError, ...)
                if not self._fallback_allowed:
                    raise VideoError(f"{self.path}: cannot open video (decord: {error})") from error
                decord_error = f"decord: {error}; "  # said too if PyAV cannot open it either
                logger.debug("%s: decord cannot read the video, reading it with PyAV: %s", self.path, error)
        try:
            return _PyAVDecoder(opened, self._short_side)
        except Exception as error:  # av.FFmpegError, ValueError
            raise VideoError(f"{self.path}: cannot open video ({decord_error}pyav: {error})") from error

    @property
    def backend(self) -> str:
        return self._decoder.name

    @property
    def fps(self) -> float:
        return self._timeline.fps

    @property
    def num_frames(self) -> int:
        return self._timeline.num_frames

    @property
    def duration(self) -> float:
        return self._timeline.duration

    @property
    def variable_frame_rate(self) -> bool:
        return self._timeline.variable_frame_rate

    @property
    def stored_frames(self) -> int:
        """Frames in the file as the decoder counts them (a variable-frame-rate video's timeline has more or fewer)."""
        return self._decoder.num_frames

    @property
    def height(self) -> int:
        return self._decoder.height

    @property
    def width(self) -> int:
        return self._decoder.width

    def get_frames(self, indices: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """Decode frames by index.

        Args:
            indices: frame indices in ``[0, num_frames)``, any order, repeats allowed.

        Returns:
            uint8 tensor ``[T, H, W, 3]`` (RGB), ``T = len(indices)``, in the order of ``indices``.

        Raises:
            VideoError: an index is out of range, or the frames cannot be decoded (after the PyAV retry
                when the reader may fall back to PyAV).
        """
        import torch  # here, so that importing this module (for probing) does not load torch

        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size == 0:
            return torch.empty((0, self.height, self.width, 3), dtype=torch.uint8)
        if indices.min() < 0 or indices.max() >= self.num_frames:
            raise VideoError(
                f"{self.path}: frame indices [{indices.min()}, {indices.max()}] outside [0, {self.num_frames})"
            )
        try:
            frames = _decode_slots(self._decoder, self._timeline, indices)
        except Exception as error:
            if not (self._fallback_allowed and self._decoder.name == "decord"):
                raise VideoError(f"{self.path}: cannot decode frames ({self._decoder.name}: {error})") from error
            logger.info("%s: decord failed (%s), reading with PyAV", self.path, error)
            frames = self._read_with_pyav(indices, error)
        return torch.from_numpy(frames)

    def _read_with_pyav(self, indices: np.ndarray, decord_error: Exception) -> np.ndarray:
        """Switch this reader to PyAV for good (the file is opened again) and read ``indices`` (slots) with it."""
        try:
            opened = _Container(self.path, self._num_threads)
            try:
                decoder = _PyAVDecoder(opened, self._short_side)
            except BaseException:
                opened.close()
                raise
            timeline = presentation_timeline(decoder.frame_times, decoder.fps)
            frames = _decode_slots(decoder, timeline, indices)
        except Exception as error:
            raise VideoError(f"{self.path}: cannot decode frames (decord: {decord_error}; pyav: {error})") from error
        self._decoder, self._timeline = decoder, timeline
        return frames


def open_video(
    path: str | Path,
    short_side: int | None = None,
    backend: Backend | None = None,
    num_threads: int = 0,
    pyav_fallback: bool = True,
) -> VideoReader:
    """Open a video for random access with the configured decoder. See :class:`VideoReader`.

    Example:
        >>> reader = open_video("video.mp4", short_side=160)
        >>> reader.fps, reader.num_frames, reader.duration, reader.backend
        >>> frames = reader.get_frames([0, 4, 8])  # uint8 [3, 160, W, 3]
    """
    return VideoReader(path, short_side=short_side, backend=backend, num_threads=num_threads, pyav_fallback=pyav_fallback)
