"""The `captured` fixture: the frame recorded for the requesting test (see wire.py)."""

from __future__ import annotations

import pytest

from tests.unit.announce.layer2 import wire


@pytest.fixture
def captured(request: pytest.FixtureRequest) -> bytes:
    """frames/<test name>.hex, read as bytes."""
    return wire.load(request.node.originalname)
