"""Window datasets over a prepared dataset of real mp4 files: shapes, ground truth on the decoded frames,
failing videos skipped and logged, worker-independent randomness."""

from __future__ import annotations

import dataclasses
import logging
import shutil

import numpy as np
import pytest
import torch

from tadcli.data.dataset import (
    EvalWindowBatches,
    EvalWindowDataset,
    TrainWindowDataset,
    VideoRecord,
    WindowMeta,
    WindowSample,
    collate_windows,
)
from tadcli.data.loader import window_loader
from tadcli.data.prepared import load_prepared_dataset, records_from_prepared
from tadcli.data.sampling import WindowGeometry
from tadcli.data.synthetic import write_synthetic_videos
from tadcli.data.transforms import EvalTransform, TrainTransform
from tadcli.services.prepare import prepare_dataset

FPS = 8
SIZE = 48  # square frames: the evaluation centre crop keeps the whole picture


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> list[VideoRecord]:
    """All videos of a small prepared synthetic dataset (5 videos, 6-9 s at 8 fps, 48x48)."""
    raw = tmp_path_factory.mktemp("raw")
    annotation_file = write_synthetic_videos(
        raw,
        num_videos=5,
        num_classes=3,
        seed=1,
        height=SIZE,
        width=SIZE,
        fps=FPS,
        video_seconds=(6.0, 9.0),
        action_seconds=(1.0, 3.0),
        max_actions_per_video=2,
    )
    prepared = tmp_path_factory.mktemp("prepared")
    report = prepare_dataset("synthetic", annotation_file, raw / "videos", prepared)
    assert report.usable, report.summary()
    dataset = load_prepared_dataset(prepared)
    return [record for subset in ("train", "val", "test") for record in records_from_prepared(dataset, subset)]


def _train_dataset(records, **overrides) -> TrainWindowDataset:
    arguments = dict(
        videos=records,
        window_size=16,
        scale_factor=2,
        frame_stride=1,
        sampling="sliding",
        trunc_thresh=0.5,
        crop_ratio=(0.9, 1.0),
        transform=TrainTransform(crop_size=32, short_side=36),
        short_side=36,
        seed=0,
    )
    return TrainWindowDataset(**{**arguments, **overrides})


CPU = torch.device("cpu")


def _eval_dataset(**geometry) -> EvalWindowDataset:
    arguments = dict(window_size=16, scale_factor=1, frame_stride=2, sampling="sliding", overlap=0.5)
    return EvalWindowDataset(WindowGeometry(**{**arguments, **geometry}), EvalTransform(crop_size=SIZE), short_side=None)


def _eval_samples(videos, batch_size: int = 1, **geometry) -> list:
    """Every decoded window of ``videos`` in order: a WindowSample, or the error of a window that failed."""
    dataset = _eval_dataset(**geometry)
    decoded = [dataset[request] for batch in EvalWindowBatches(videos, dataset, batch_size) for request in batch]
    return [item.sample if item.sample is not None else item.error for item in decoded]


def test_records_from_the_prepared_manifest(records):
    assert len(records) == 5
    for record in records:
        assert record.path.is_file() and record.fps == pytest.approx(FPS)
        assert record.duration == pytest.approx(record.num_frames / FPS)
        assert record.segments.shape == (len(record.labels), 2) and record.labels.dtype == np.int64
        assert ((record.labels >= 0) & (record.labels < 3)).all()


def test_training_sample_has_the_documented_shapes_and_types(records):
    dataset = _train_dataset(records)
    sample = dataset[0]
    assert sample.frames.dtype == torch.uint8 and sample.frames.shape == (3, 32, 32, 32)
    assert sample.mask.dtype == torch.bool and sample.mask.shape == (16,)
    assert sample.gt_segments.dtype == torch.float32 and sample.gt_segments.shape[1] == 2
    assert sample.gt_labels.dtype == torch.int64 and len(sample.gt_labels) == len(sample.gt_segments)
    assert ((sample.gt_segments >= 0) & (sample.gt_segments <= 16)).all()
    meta = sample.meta
    assert meta.video_id == records[0].video_id and meta.snippet_stride == 2 and meta.window_size == 16
    # kept ground truth maps back to the annotation (clipped to the window)
    window_end = meta.grid_to_seconds(torch.tensor(16.0)).item()
    start = meta.window_start_frame / meta.fps
    kept = set(map(tuple, np.round(records[0].segments.clip(start, window_end), 6).tolist()))
    back = np.round(meta.grid_to_seconds(sample.gt_segments.double()).numpy(), 6)
    assert set(map(tuple, back.tolist())) <= kept


def test_training_samples_depend_on_seed_and_epoch_not_on_workers(records):
    dataset = _train_dataset(records)
    first = dataset[1]
    assert torch.equal(first.frames, _train_dataset(records)[1].frames)
    dataset.set_epoch(1)
    assert not torch.equal(first.frames, dataset[1].frames)
    dataset.set_epoch(0)
    order = [[3, 0], [4, 1], [2]]  # an epoch's shuffled batches, as the training sampler gives them
    in_process = list(window_loader(dataset, batch_sampler=order, num_workers=0, device=CPU, seed=3))
    in_workers = list(window_loader(dataset, batch_sampler=order, num_workers=2, device=CPU, seed=3,
                                    single_thread_workers=True))
    assert len(in_process) == len(in_workers) == 3
    for a, b in zip(in_process, in_workers):
        assert torch.equal(a.frames, b.frames) and torch.equal(a.masks, b.masks)
        assert [m.video_id for m in a.metas] == [m.video_id for m in b.metas]


def test_evaluation_windows_cover_each_video_and_ground_truth_matches_the_pixels(records):
    steps_seen = {record.video_id: set() for record in records}
    for sample in _eval_samples(records, batch_size=3):
        meta, frames = sample.meta, sample.frames
        assert frames.shape == (3, 16, SIZE, SIZE) and sample.mask.shape == (16,)
        record = next(r for r in records if r.video_id == meta.video_id)
        for step in np.flatnonzero(sample.mask.numpy()):
            frame = meta.window_start_frame + step * meta.snippet_stride
            steps_seen[meta.video_id].add(frame)
            # synthetic actions are saturated shapes; the background is not
            image = frames[:, step].int()
            saturated = int(((image.max(dim=0).values - image.min(dim=0).values) > 150).sum())
            seconds = frame / meta.fps
            in_action = bool(((record.segments[:, 0] <= seconds) & (seconds < record.segments[:, 1])).any())
            assert (saturated > 5) == in_action, f"{meta.video_id} frame {frame}"
    for record in records:
        assert steps_seen[record.video_id] == set(range(0, record.num_frames, 2))


def test_resize_sampling_resamples_whole_videos(records):
    samples = _eval_samples(records, sampling="resize", window_size=8, scale_factor=2)
    assert len(samples) == len(records)
    sample = samples[0]
    assert sample.frames.shape == (3, 16, SIZE, SIZE) and sample.mask.all()
    np.testing.assert_allclose(
        sample.meta.grid_to_seconds(sample.gt_segments.double().numpy()), records[0].segments, atol=1e-5
    )
    train = _train_dataset(records, sampling="resize", window_size=8, scale_factor=2)
    assert train[0].frames.shape == (3, 16, 32, 32)


@pytest.fixture
def records_with_a_corrupt_video(records, tmp_path):
    broken = tmp_path / "broken.mp4"
    shutil.copy(records[1].path, broken)
    data = broken.read_bytes()
    broken.write_bytes(data[:64] + bytes(len(data) - 64))  # header kept, every frame zeroed
    return [records[0], dataclasses.replace(records[1], video_id="broken_video", path=broken), *records[2:]]


def test_a_corrupt_video_is_skipped_and_logged_during_training(records_with_a_corrupt_video, caplog):
    dataset = _train_dataset(records_with_a_corrupt_video)
    with caplog.at_level(logging.WARNING, logger="tadcli.data.dataset"):
        batches = list(window_loader(dataset, batch_size=2, device=CPU))
    video_ids = [meta.video_id for batch in batches for meta in batch.metas]
    assert len(video_ids) == 5 and "broken_video" not in video_ids
    assert any("broken_video" in message and "broken.mp4" in message for message in caplog.messages)


def test_evaluation_names_the_videos_that_cannot_be_opened_or_decoded(records_with_a_corrupt_video, tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("these are not frames\n")
    videos = [*records_with_a_corrupt_video, str(text), str(records_with_a_corrupt_video[0].path)]
    samples = _eval_samples(videos, batch_size=3)
    decoded = [s.meta.video_id for s in samples if isinstance(s, WindowSample)]
    assert set(decoded) == {r.video_id for r in records_with_a_corrupt_video} - {"broken_video"} | {videos[-1]}
    errors = [s for s in samples if isinstance(s, str)]
    assert errors and all("broken.mp4" in e for e in errors[:-1]) and "notes.mp4: not a video container" in errors[-1]


def test_collate_stacks_tensors_and_keeps_lists():
    meta = WindowMeta("v", 8.0, 2.0, 16, 0.0, 2.0, 2)
    sample = WindowSample(torch.zeros(3, 4, 8, 8, dtype=torch.uint8), torch.ones(2, dtype=torch.bool), torch.zeros(1, 2),
                          torch.zeros(1, dtype=torch.int64), meta)
    batch = collate_windows([sample, None, sample])
    assert batch.frames.shape == (2, 3, 4, 8, 8) and batch.masks.shape == (2, 2) and len(batch) == 2
    assert batch.metas == [meta, meta] and len(batch.gt_segments) == 2
    assert collate_windows([None, None]) is None


def test_record_from_a_video_file(records):
    record = VideoRecord.from_video(records[0].path)
    assert record.video_id == records[0].path.stem and record.num_frames == records[0].num_frames
    assert record.segments.shape == (0, 2)
