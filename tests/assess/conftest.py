"""Fixtures for the assessment tests."""

from __future__ import annotations

import pytest
from assess_helpers import make_catalogue


@pytest.fixture
def catalogue_factory():
    return make_catalogue
