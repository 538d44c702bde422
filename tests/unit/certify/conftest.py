"""Shared fixtures for the certify unit tests: keys are slow-ish to make, so make them once."""

from __future__ import annotations

import pytest

from openzoo.certify.keys import SigningKey, generate_key


@pytest.fixture(scope="session")
def zoo_key() -> SigningKey:
    return generate_key("zoo")


@pytest.fixture(scope="session")
def reviewer_keys() -> dict[str, SigningKey]:
    return {name: generate_key(name) for name in ("alice", "bob", "carol", "mallory")}
