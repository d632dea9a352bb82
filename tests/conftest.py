from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def stories() -> dict[str, str]:
    """Six distinct Arabic news stories written for these tests (no two are copies)."""
    return json.loads((FIXTURES / "stories.json").read_text(encoding="utf-8"))


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared evaluation data sits beside the repo as ../shared")
    return path
