"""Shared fixtures: settings for the whole suite."""

from __future__ import annotations

import pytest

from credit_common.settings import Settings, get_settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return get_settings()
