"""Tests send requests as departments do: signed with the unit's key from its credentials file
(`.local/credentials`, written by `make catalog`; contracts.md, Security).

`SigningProducer` is the producer every suite sends with: a CloudEvent it writes to a request
topic leaves signed by its source's key, unless it is already signed or no key exists for its
source (a test of the refusals sends those on purpose). Anything that is not an envelope (the
garbage of the dead-letter tests) goes out as it is."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from credit_common.contracts.reference import UnitRecord
from credit_common.messaging import topics
from credit_common.reference.cli import publish_records
from credit_common.reference.loader import load_files
from credit_common.security import credentials

ROOT = Path(__file__).resolve().parents[2]
CREDENTIALS = Path(os.environ.get("CREDIT_CREDENTIALS_DIR") or ROOT / ".local" / "credentials")
#: Units the tests send as that the catalogue lacks: an unknown unit is answered `unknown_unit`
#: by the rules only if its signature is good, so these hold keys the tests publish.
TEST_PRINCIPALS = ("unit:999999-NONE", "unit:999999-NOPE", "unit:999999-XYZ", "unit:990000-CT")


SIGNERS = credentials.Signers(CREDENTIALS)


def sign(envelope: dict[str, Any]) -> dict[str, Any]:
    """`envelope` signed by its source's key (as it is when signed already or no key exists)."""
    return SIGNERS.sign(envelope)


class SigningProducer(AIOKafkaProducer):
    """An idempotent producer that signs what it writes to the request topics."""

    async def send(self, topic: str, value: Any = None, key: Any = None, *args: Any, **kwargs: Any) -> Any:
        if topic in topics.REQUEST_TOPICS and isinstance(value, bytes):
            value = SIGNERS.sign_bytes(value)
        return await super().send(topic, value, key, *args, **kwargs)


async def provision_keys(bootstrap: str) -> None:
    """Every unit of the catalogue, the portal and the tests' extra units hold a key, published
    (idempotent: `make catalog` did the same for the catalogue; this covers a bare `pytest`)."""
    units = [f"unit:{r.code}" for r in load_files([ROOT / "deploy" / "catalog"]) if isinstance(r, UnitRecord)]
    records = credentials.provision([*units, "portal", *TEST_PRINCIPALS], CREDENTIALS)
    await publish_records(list(records), bootstrap)
    SIGNERS.forget()
