"""No full identity number of a natural person where a unit or the public can read it (contracts.md,
Security): a department's request about a person that is refused (a wrong check digit, a number
too long, an unknown standard, bytes that are not even an event) is answered on the feedback
topic, which every unit reads, without the number; its dead letter's reason and the service's log
do not carry it either (the dead letter keeps the raw bytes for operators only: the ACL test shows
that no unit and not the public may read that topic). The public views are covered by
tests/integration/sharing/test_masking.py and cases' typical-case test."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import pytest
from credit_common.messaging import topics
from stdnum.cn import ric

from tests.support.processes import ServiceProcess
from tests.support.subjects import new_resident_id

from .conftest import Departments, designate, person

pytestmark = pytest.mark.integration

EXAMPLES = 6


def wrong_check_digit(number: str) -> str:
    digits = [d for d in "0123456789X" if d != number[-1]]
    return number[:-1] + random.choice(digits)


def leaks(text: str, numbers: list[str]) -> list[str]:
    upper = text.upper()
    return [n for n in numbers if n.upper() in upper or n[:17] in upper]


async def test_a_refused_request_about_a_person_never_echoes_the_number(
    designation: ServiceProcess, departments: Departments
) -> None:
    numbers: list[str] = []
    answers: list[dict] = []
    dead: list[dict] = []
    for _ in range(EXAMPLES):
        good = new_resident_id()
        assert ric.is_valid(good)
        bad = wrong_check_digit(good)
        numbers += [good, bad]

        checksum = await departments.rejected(designate("black", "taxation-black", {**person(), "id": bad}))
        assert "invalid_checksum" in checksum.codes
        too_long = await departments.rejected(designate("black", "taxation-black", {**person(), "id": good + "7"}))
        unknown = await departments.rejected(designate("black", "no-such-standard", {**person(), "id": good}))
        answers += [checksum.event, too_long.event, unknown.event]

        raw = b'{"specversion": "1.0", "subject": "' + good.encode() + b'", "data": {"id": "' + good.encode()
        await send_raw(departments, raw)
        value_b64 = base64.b64encode(raw).decode()

        def its_letter(e: dict[str, Any], v: str = value_b64) -> bool:
            return bool(e["data"].get("value_b64") == v)

        (letter,) = await departments.collector.wait_for(topics.DEADLETTER, its_letter)
        dead.append(letter)

    for answer in answers:
        assert not leaks(json.dumps(answer, ensure_ascii=False), numbers), answer
    for letter in dead:
        shown = {k: v for k, v in letter["data"].items() if k not in ("value_b64", "key_b64")}
        assert not leaks(json.dumps(shown, ensure_ascii=False), numbers), letter
    log = designation.log_path.read_text(errors="replace")
    assert not leaks(log, numbers), "the designation service logged a full identity number"


async def send_raw(departments: Departments, value: bytes) -> None:
    await departments.kafka.send_and_wait(topics.DESIGNATION_REQUESTS, value, key=b"raw")
