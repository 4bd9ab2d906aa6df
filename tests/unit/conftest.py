"""Unit tests need no server and act as no principal: the suite runs under `make test` as the
stack's admin (CREDIT_PRINCIPAL=admin), whose credentials file a test's own credentials directory
does not hold."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_principal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDIT_PRINCIPAL", raising=False)
