"""Random-access video reading: decord first, PyAV when decord is missing or fails on a file.

``open_video(path)`` returns a :class:`VideoReader` that knows the video's ``fps``, ``num_frames`` and
``duration`` and decodes any set of frame indices with ``get_frames(indices)`` into a uint8 tensor
``[T, H, W, 3]`` (RGB, frames in the order of ``indices``, repeated indices allowed). That layout is what
both decoders produce, so no copy is made here; the spatial transforms turn it into ``[T, 3, H, W]``.

Frame index ``i`` is slot ``i`` of the video's constant-rate timeline (:mod:`tadcli.data.timeline`): the
picture shown ``i / fps`` seconds after the first frame, read from the frames' presentation times, so
that indices are real seconds even in a variable-frame-rate video. For a constant-rate video, slot ``i``
is the ``i``-th frame in presentation order, the convention of decord (and of the annotation ``frame``
counts of OpenTAD, spec §6.3). The PyAV decoder builds the same table from the packets' timestamps, so
both decoders return identical frames for the same index (checked in the tests).

Frames come out upright, as players show them: a video whose stream carries a display rotation (phone
videos: 90, 180 or 270 degrees) is read with PyAV and its frames are turned. decord is not used for such
files, because it applies some rotations itself and returns corrupt frames for others.

``short_side`` asks the decoder itself to scale frames so that their short side has that many pixels
(aspect ratio kept, sizes rounded to even numbers). Scaling inside the decoder is several times faster
than converting full-resolution frames to RGB and resizing them afterwards, and it is step 1 of the
training and evaluation pipelines (spec §6.4: "Resize short side").

A reader keeps the file open; open one per DataLoader worker (see ``tadcli.data.dataset``), never share
one across processes.

:data:`VIDEO_EXTENSIONS` are the files taken for videos where a folder is searched (``tad prepare``,
``tad detect``, ``tad extract``: :func:`expand_video_inputs`).
"""

from __future__ import annotations

import glob
import itertools
import logging
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from tadcli.data.timeline import Timeline, presentation_timeline
from tadcli.errors import TadError, VideoError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

Backend = Literal["auto", "decord", "pyav"]

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm")


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


class _DecordDecoder:
    """Frames through ``decord.VideoReader.get_batch`` (accurate seeking)."""

    name = "decord"

    def __init__(self, path: Path, short_side: int | None, num_threads: int, rotation: int) -> None:
        import decord  # optional dependency: not available on every platform

        if rotation:
            raise ValueError(f"a video rotated by {rotation} degrees (decord does not turn it upright reliably)")
        decord.logging.set_level(decord.logging.QUIET)  # its FFmpeg would print to stderr
        reader = decord.VideoReader(str(path), num_threads=num_threads)
        source_height, source_width, _ = reader[0].shape
        self.height, self.width = scaled_size(source_height, source_width, short_side)
        if (self.height, self.width) != (source_height, source_width):
            reader = decord.VideoReader(str(path), width=self.width, height=self.height, num_threads=num_threads)
        self._reader = reader
        self.num_frames = len(reader)
        self.fps = float(reader.get_avg_fps())
        self.frame_times = reader.get_frame_timestamp(np.arange(self.num_frames))[:, 0]  # float32 [N] seconds

    def get_frames(self, indices: np.ndarray) -> np.ndarray:
        return self._reader.get_batch(indices.tolist()).asnumpy()


class _PyAVDecoder:
    """Frames through PyAV: seek to the key frame before each wanted frame, decode forward.

    The presentation-order frame table (timestamp of every frame, key frames) is read from the packets
    once at opening, without decoding, so indices mean the same as decord's. Frames of a rotated video
    are decoded at the stored orientation and turned by ``rotation`` degrees counter-clockwise.
    """

    name = "pyav"

    def __init__(self, path: Path, short_side: int | None, num_threads: int, rotation: int) -> None:
        import av

        self._container = av.open(str(path))
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        if num_threads > 0:
            self._stream.codec_context.thread_count = num_threads
        frame_pts, keyframe_pts = [], []
        for packet in self._container.demux(self._stream):
            if packet.pts is None:  # the flushing packet at the end of the stream
                continue
            frame_pts.append(packet.pts)
            if packet.is_keyframe:
                keyframe_pts.append(packet.pts)
        if not frame_pts:
            raise ValueError("the video stream has no frames")
        self._frame_pts = np.sort(np.asarray(frame_pts, dtype=np.int64))
        self._keyframe_pts = np.sort(np.asarray(keyframe_pts or frame_pts[:1], dtype=np.int64))
        self._index_of_pts = {int(pts): i for i, pts in enumerate(self._frame_pts)}
        self.num_frames = len(self._frame_pts)
        rate = self._stream.average_rate or self._stream.guessed_rate
        if rate is None:
            span = Fraction(int(self._frame_pts[-1] - self._frame_pts[0])) * self._stream.time_base
            rate = Fraction(max(self.num_frames - 1, 1)) / span
        self.fps = float(rate)
        # float32 seconds, computed as decord computes them, so both decoders build the same timeline
        self.frame_times = (self._frame_pts * float(self._stream.time_base)).astype(np.float32)
        self._quarter_turns = rotation // 90
        context = self._stream.codec_context
        stored_height, stored_width = context.height, context.width
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


def container_problem(path: Path) -> str | None:
    """What makes ``path`` unreadable before any frame is decoded, in a few words, or ``None``.

    Files that no decoder can open are recognised here with PyAV, whose FFmpeg is silent, so that they
    never reach decord (whose C++ code prints its errors to stderr): an empty file, a file that is not
    a video container, an MP4 whose index (``moov`` atom, written last) is missing because the file was
    cut short, a container without a video stream or without a single frame (cut right after its index).
    """
    import av

    size = path.stat().st_size
    if size == 0:
        return "empty file (0 bytes)"
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return "the container holds no video stream"
            stream = container.streams.video[0]
            if not any(packet.pts is not None for packet in itertools.islice(container.demux(stream), 2)):
                return f"truncated at frame 0 of the {stream.frames} its container declares (an interrupted download?)"
    except av.FFmpegError as error:
        with path.open("rb") as handle:
            head = handle.read(12)
        if head[4:8] == b"ftyp":  # an MP4 / MOV that starts right
            return f"MP4 without its index (moov atom), {size} bytes: truncated (an interrupted download?) or corrupt"
        return f"not a video container (FFmpeg: {error.strerror or error})"
    return None


def _decode_slots(decoder: _DecordDecoder | _PyAVDecoder, timeline: Timeline, slots: np.ndarray) -> np.ndarray:
    """Frames ``[T, H, W, 3]`` of timeline ``slots``; a frame that fills several slots (a sparse or frozen
    stretch of a variable-frame-rate video) is decoded once."""
    if not timeline.variable_frame_rate:
        return decoder.get_frames(slots)  # slot k is frame k
    frames, inverse = np.unique(timeline.source_frames(slots), return_inverse=True)
    return decoder.get_frames(frames)[inverse.reshape(-1)]


def display_rotation(path: Path) -> int:
    """Degrees (0, 90, 180 or 270, counter-clockwise) by which players turn the frames of ``path`` to show
    them: the display matrix of its video stream (phone videos), as FFmpeg attaches it to decoded frames.
    0 when no frame decodes (the decoders then say why)."""
    import av

    try:
        with av.open(str(path)) as container:
            for frame in container.decode(container.streams.video[0]):
                return round(frame.rotation / 90) % 4 * 90
    except av.FFmpegError:
        pass
    return 0


class VideoReader:
    """An open video with random access to its frames.

    Args:
        path: the video file.
        short_side: scale frames in the decoder so that their short side has this many pixels
            (``None``: source size).
        backend: ``"auto"`` tries decord and falls back to PyAV when decord is missing or cannot open
            the file (and, later, when decord fails on a read: the read is retried with PyAV);
            ``"decord"`` or ``"pyav"`` force one decoder.
        num_threads: decoder threads (0: the decoder's default).

    Raises:
        VideoError: the file is missing, cannot be opened by any decoder, or has no frames.

    Attributes:
        path, fps (frames per second of the timeline), num_frames (frames of the timeline: a
        constant-rate video's frames in presentation order), duration (real seconds; constant rate:
        ``num_frames / fps``), variable_frame_rate (frames are not evenly spaced in time), rotation
        (degrees counter-clockwise by which the stored frames are turned upright), height and width (of
        the returned, upright frames), backend (the decoder in use: ``"decord"`` or ``"pyav"``).
    """

    def __init__(
        self,
        path: str | Path,
        short_side: int | None = None,
        backend: Backend = "auto",
        num_threads: int = 0,
    ) -> None:
        self.path = Path(path)
        self._short_side = short_side
        self._num_threads = num_threads
        self._fallback_allowed = backend == "auto"
        if not self.path.is_file():
            raise VideoError(f"{self.path}: video file not found")
        problem = container_problem(self.path)
        if problem is not None:
            raise VideoError(f"{self.path}: {problem}")
        self.rotation = display_rotation(self.path)
        errors = []
        self._decoder: _DecordDecoder | _PyAVDecoder | None = None
        decoder_types = {"auto": (_DecordDecoder, _PyAVDecoder), "decord": (_DecordDecoder,), "pyav": (_PyAVDecoder,)}
        for decoder_type in decoder_types[backend]:
            try:
                self._decoder = decoder_type(self.path, short_side, num_threads, self.rotation)
                break
            except Exception as error:  # decoders raise their own types (DECORDError, av.FFmpegError, ...)
                errors.append(f"{decoder_type.name}: {error}")
                logger.debug("%s: %s cannot open the video: %s", self.path, decoder_type.name, error)
        if self._decoder is None:
            raise VideoError(f"{self.path}: cannot open video ({'; '.join(errors)})")
        if self._decoder.num_frames <= 0 or self._decoder.fps <= 0:
            raise VideoError(
                f"{self.path}: video has no frames (frames={self._decoder.num_frames}, fps={self._decoder.fps})"
            )
        self._timeline = presentation_timeline(self._decoder.frame_times, self._decoder.fps)

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
                when the reader was opened with ``backend="auto"``).
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
        """Switch this reader to PyAV for good and read ``indices`` (slots) with it."""
        try:
            decoder = _PyAVDecoder(self.path, self._short_side, self._num_threads, self.rotation)
            timeline = presentation_timeline(decoder.frame_times, decoder.fps)
            frames = _decode_slots(decoder, timeline, indices)
        except Exception as error:
            raise VideoError(f"{self.path}: cannot decode frames (decord: {decord_error}; pyav: {error})") from error
        self._decoder, self._timeline = decoder, timeline
        return frames


def open_video(
    path: str | Path,
    short_side: int | None = None,
    backend: Backend = "auto",
    num_threads: int = 0,
) -> VideoReader:
    """Open a video for random access (decord, PyAV fallback). See :class:`VideoReader`.

    Example:
        >>> reader = open_video("video.mp4", short_side=160)
        >>> reader.fps, reader.num_frames, reader.duration
        >>> frames = reader.get_frames([0, 4, 8])  # uint8 [3, 160, W, 3]
    """
    return VideoReader(path, short_side=short_side, backend=backend, num_threads=num_threads)
