"""Shared fixtures.

``shared_dir`` is the project's ``shared/`` folder, a sibling of the repository root (CI lays a copy of it
beside the clone). Tests that read the full third-party annotation files from it skip, with the reason,
only where that folder is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
TEST_DATA = Path(__file__).resolve().parent / "data"


def error_line(result) -> str:
    """The one line a CLI run printed for a bad input (exit code 2, no traceback)."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


# Tests using these fixtures train a model first (once per session): they are marked slow.
SLOW_FIXTURES = {"trained_run", "world"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED_DIR / "data" / "annotations").is_dir():
        pytest.skip(f"the shared annotation folder {SHARED_DIR / 'data' / 'annotations'} is absent")
    return SHARED_DIR


@pytest.fixture(scope="session")
def annotations_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "annotations"


@pytest.fixture(scope="session")
def test_data() -> Path:
    return TEST_DATA


# Overrides that make the tiny preset train in seconds on the small synthetic dataset below.
FAST_TINY = (
    "input.frames=64",
    "input.augmentation=none",
    "train.warmup_epochs=1",
    "train.num_workers=0",
)


@pytest.fixture(scope="session")
def small_synthetic(tmp_path_factory) -> Path:
    """A prepared synthetic dataset: 14 real mp4 videos (12-16 s, 8 fps, 64x64), 2 classes; 8 train, 3 val, 3 test."""
    from tadcli.data.synthetic import VIDEO_DIRNAME, write_synthetic_videos
    from tadcli.services.prepare import prepare_dataset

    raw = tmp_path_factory.mktemp("small_synthetic_raw")
    root = tmp_path_factory.mktemp("small_synthetic")
    annotation_file = write_synthetic_videos(
        raw,
        num_videos=14,
        num_classes=2,
        seed=3,
        height=64,
        width=64,
        fps=8,
        video_seconds=(12.0, 16.0),
        action_seconds=(2.0, 5.0),
        max_actions_per_video=2,
    )
    report = prepare_dataset("synthetic", annotation_file, raw / VIDEO_DIRNAME, root, annotation_format="custom-json", force=True)
    assert report.usable, report.summary()
    return root


TRAINED_EPOCHS = 50


@pytest.fixture(scope="session")
def trained_run(small_synthetic, tmp_path_factory) -> Path:
    """A run of the tiny preset trained on :func:`small_synthetic` in the test process (about half a minute)."""
    from tadcli.services.train import TrainRequest, train

    run_dir = tmp_path_factory.mktemp("runs") / "trained"
    overrides = [*FAST_TINY, f"train.epochs={TRAINED_EPOCHS}", "train.eval_start_epoch=1000"]
    train(TrainRequest("tiny", small_synthetic, run_dir, overrides, device="cpu", threads=1))
    return run_dir


@pytest.fixture(params=["decord", "pyav"])
def decoder(request, monkeypatch) -> str:
    """Each video decoder in turn, chosen as a user chooses it (``TAD_DECODER``) for everything the test runs;
    decord is skipped where it is not installed (no wheel for the platform)."""
    from tadcli.data.video import DECODER_ENV, decord_installed

    if request.param == "decord" and not decord_installed():
        pytest.skip("decord is not installed")
    monkeypatch.setenv(DECODER_ENV, request.param)
    return request.param


@pytest.fixture
def container_opens(monkeypatch) -> list[tuple[str, str]]:
    """``(decoder, file name)`` of every video container opened for reading while the test runs (``av.open``
    and ``decord.VideoReader``, the two ways tad opens a video file)."""
    import av

    from tadcli.data.video import import_decord

    opens: list[tuple[str, str]] = []
    av_open = av.open

    def counting_av_open(file, *args, **kwargs):
        if (args[0] if args else kwargs.get("mode", "r")) == "r":  # writing a test video is not an open
            opens.append(("pyav", Path(str(file)).name))
        return av_open(file, *args, **kwargs)

    monkeypatch.setattr(av, "open", counting_av_open)
    try:
        decord = import_decord()
    except ImportError:
        return opens
    decord_reader = decord.VideoReader

    def counting_decord_reader(uri, *args, **kwargs):
        opens.append(("decord", Path(str(uri)).name))
        return decord_reader(uri, *args, **kwargs)

    monkeypatch.setattr(decord, "VideoReader", counting_decord_reader)
    return opens
