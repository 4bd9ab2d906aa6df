"""The HTTP unit tests verify tokens against a local issuer of their own (a temporary credentials
directory), never the one of `.local/credentials`."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def credentials_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "credentials"
    monkeypatch.setenv("CREDIT_CREDENTIALS_DIR", str(where))
    return where
