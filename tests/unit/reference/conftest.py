"""Fixtures of the reference-data tests: the shipped catalogue, loaded once."""

from __future__ import annotations

from pathlib import Path

import pytest
from credit_common.contracts.reference import ReferenceRecord
from credit_common.reference.catalog import Catalog
from credit_common.reference.loader import load_files

CATALOG_DIR = Path(__file__).resolve().parents[3] / "deploy" / "catalog"


@pytest.fixture(scope="module")
def shipped_records() -> list[ReferenceRecord]:
    return load_files([CATALOG_DIR])


@pytest.fixture(scope="module")
def shipped(shipped_records: list[ReferenceRecord]) -> Catalog:
    return Catalog.of(shipped_records)
