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
