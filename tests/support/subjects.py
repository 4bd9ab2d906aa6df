"""Valid identifiers for tests, made with python-stdnum's own check-digit functions."""

from __future__ import annotations

import random
import uuid
from datetime import date, timedelta

from stdnum.cn import ric, uscc

_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def new_uscc(rng: random.Random | None = None) -> str:
    """A random, valid 18-character Unified Social Credit Code of a company (91...)."""
    rng = rng or random.Random(uuid.uuid4().int)
    body = "91" + "110105" + "".join(rng.choice(_USCC_ALPHABET) for _ in range(9))
    return body + uscc.calc_check_digit(body)


def new_resident_id(rng: random.Random | None = None, region: str = "110101") -> str:
    """A random, valid 18-digit resident identity number with a real birth date."""
    rng = rng or random.Random(uuid.uuid4().int)
    born = date(1960, 1, 1) + timedelta(days=rng.randrange(0, 40 * 365))
    body = region + born.strftime("%Y%m%d") + f"{rng.randrange(0, 1000):03d}"
    return body + ric.calc_check_digit(body + "0")  # stdnum's function skips the last character


def wrong_check(code: str) -> str:
    """The same code with another check character (fails only the checksum)."""
    alphabet = "0123456789X" if code[:6].isdigit() and len(code) == 18 and code[6:8] in ("19", "20") else _USCC_ALPHABET
    last = code[-1]
    return code[:-1] + next(c for c in alphabet if c != last)
