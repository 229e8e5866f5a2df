"""Feature files of ``tad extract``: exact round trips, a sidecar that maps index to seconds, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from tadcli.data.sampling import grid_to_seconds
from tadcli.errors import OutputError
from tadcli.io.features import feature_times, read_features, write_features

SIDECAR = {
    "fps": 29.97,
    "frame_stride": 1,
    "snippet_stride": 4,
    "window_frames": 768,
    "image_size": 160,
    "backbone": "small-768",
    "weights": "vit-small-k400.pth",
    "video": "clips/a.mp4",
}


def features(num: int = 50, dim: int = 24) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((num, dim), dtype=np.float32)


@pytest.mark.parametrize("format", ["npy", "safetensors"])
def test_features_round_trip_exactly_with_their_sidecar(tmp_path: Path, format: str) -> None:
    array = features()
    path = write_features(tmp_path / "feats", "a", array, SIDECAR, format)
    assert path == tmp_path / "feats" / f"a.{format}"
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([f"a.{format}", "a.json"])  # no temporaries
    loaded, sidecar = read_features(path)
    assert loaded.dtype == np.float32 and np.array_equal(loaded, array)
    assert sidecar == json.loads((tmp_path / "feats" / "a.json").read_text())
    assert {key: sidecar[key] for key in SIDECAR} == SIDECAR
    assert (sidecar["num_features"], sidecar["feature_dim"], sidecar["file"], sidecar["format"]) == (50, 24, path.name, format)
    # a consumer without tad reads the array with numpy or safetensors alone
    plain = np.load(path) if format == "npy" else load_file(path)["features"]
    assert np.array_equal(plain, array)


def test_sidecar_times_are_the_detector_grid_times(tmp_path: Path) -> None:
    _, sidecar = read_features(write_features(tmp_path, "a", features(), SIDECAR))
    assert sidecar["feature_seconds"] == [0.0, 4 / 29.97]
    times = feature_times(sidecar)
    assert times.shape == (50,)
    np.testing.assert_allclose(times, grid_to_seconds(np.arange(50.0), 29.97, 4, 0), rtol=1e-12)
    assert times[30] == pytest.approx(30 * 4 / 29.97)  # feature 30 starts at frame 120


def test_float64_features_are_stored_as_float32(tmp_path: Path) -> None:
    array = features().astype(np.float64)
    loaded, _ = read_features(write_features(tmp_path, "a", array, SIDECAR))
    assert loaded.dtype == np.float32 and np.array_equal(loaded, array.astype(np.float32))


def test_bad_arguments_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"float array \[T, C\], got int64 \[3, 2\]"):
        write_features(tmp_path, "a", np.zeros((3, 2), dtype=np.int64), SIDECAR)
    with pytest.raises(ValueError, match=r"got float32 \[1, 3, 2\]"):
        write_features(tmp_path, "a", np.zeros((1, 3, 2), dtype=np.float32), SIDECAR)
    with pytest.raises(ValueError, match="misses snippet_stride, weights"):
        write_features(tmp_path, "a", features(), {k: v for k, v in SIDECAR.items() if k not in ("snippet_stride", "weights")})
    with pytest.raises(ValueError, match="must not state feature_seconds"):
        write_features(tmp_path, "a", features(), {**SIDECAR, "feature_seconds": [0.0, 0.5]})
    with pytest.raises(ValueError, match="fps must be a positive number, got 0"):
        write_features(tmp_path, "a", features(), {**SIDECAR, "fps": 0})
    with pytest.raises(ValueError, match="not a plain file name"):
        write_features(tmp_path, "../a", features(), SIDECAR)
    with pytest.raises(ValueError, match="unknown features format 'pt'"):
        write_features(tmp_path, "a", features(), SIDECAR, "pt")
    assert list(tmp_path.iterdir()) == []


def test_unreadable_feature_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="features file not found"):
        read_features(tmp_path / "missing.npy")
    path = write_features(tmp_path, "a", features(), SIDECAR)
    np.save(path, np.zeros((49, 24), dtype=np.float32))
    with pytest.raises(OutputError, match=r"shape \[49, 24\], its sidecar says \[num_features, feature_dim\] = \[50, 24\]"):
        read_features(path)
    path.write_bytes(b"not an array")
    with pytest.raises(OutputError, match="not a readable features file"):
        read_features(path)
    (tmp_path / "a.json").unlink()
    with pytest.raises(OutputError, match="its sidecar a.json is missing"):
        read_features(path)
    broken = write_features(tmp_path, "b", features(), SIDECAR, "safetensors")
    broken.write_bytes(b"garbage")
    with pytest.raises(OutputError, match="not a readable features file"):
        read_features(broken)
