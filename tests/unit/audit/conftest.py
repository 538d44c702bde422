"""Fixtures for the audit unit tests: the deterministic fake scorer from ``audit_fakes``."""

from __future__ import annotations

import pytest
from audit_fakes import FakeScorer


@pytest.fixture
def scorer() -> FakeScorer:
    return FakeScorer()
