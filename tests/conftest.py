"""Shared fixtures: seeded, small, and closing every figure after each test."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _seeded_and_closed():
    torch.manual_seed(0)
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
