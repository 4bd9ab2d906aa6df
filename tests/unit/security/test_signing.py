"""Signed requests (contracts.md, Security): every refusal code, the canonical form's independence
from key order and whitespace, and key validity at the time of receipt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import rfc8785
from credit_common.contracts.reference import KeyRecord
from credit_common.security.signing import Signer, Verifier, b64url, canonical, principal_of, unb64url
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given
from hypothesis import strategies as st

T0 = datetime(2026, 12, 1, tzinfo=UTC)
NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def envelope(source: str = "unit/110108-SAT", **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "0193a0b4-0000-7000-8000-000000000001",
        "source": source,
        "type": "credit.designation.designate",
        "time": "2026-12-03T17:00:00+08:00",
        "subject": "91110108MA00000000",
        "datacontenttype": "application/json",
        "data": {"list": "black", "standard": "taxation-black", "note": "\u4fe1\u7528 \u00e9"},
        **extra,
    }


_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def keys(*records: KeyRecord) -> Verifier:
    found = {r.code: r for r in records}
    return Verifier(found.get)


ALICE = Signer.generate("k-110108-SAT-1", "unit:110108-SAT")
BOB = Signer.generate("k-110000-SAT-1", "unit:110000-SAT")
PORTAL = Signer.generate("k-portal-1", "portal")


def test_a_signed_request_verifies_and_the_signature_is_ed25519_over_the_jcs_bytes() -> None:
    signed = ALICE.sign(envelope())
    assert keys(ALICE.record(T0)).check(signed, NOW) is None
    assert signed["signaturekid"] == "k-110108-SAT-1"
    # Independently: JCS of the envelope without `signature`, Ed25519, base64url without padding.
    unsigned = {k: v for k, v in signed.items() if k != "signature"}
    public = Ed25519PublicKey.from_public_bytes(unb64url(ALICE.public_key))
    public.verify(unb64url(signed["signature"]), rfc8785.dumps(unsigned))
    assert "=" not in signed["signature"]
    assert len(unb64url(signed["signature"])) == 64


def test_key_order_and_whitespace_of_the_wire_form_do_not_matter() -> None:
    signed = ALICE.sign(envelope())
    wire = orjson.dumps(dict(reversed(list(signed.items()))), option=orjson.OPT_INDENT_2)
    assert keys(ALICE.record(T0)).check(orjson.loads(wire), NOW) is None


@pytest.mark.parametrize("drop", ["signature", "signaturekid", "both"])
def test_unsigned(drop: str) -> None:
    signed = ALICE.sign(envelope())
    for attr in ("signature", "signaturekid") if drop == "both" else (drop,):
        signed.pop(attr)
    refusal = keys(ALICE.record(T0)).check(signed, NOW)
    assert refusal is not None
    assert refusal.code == "unsigned"


def test_a_unit_signing_as_another_unit_is_an_unknown_key() -> None:
    """Bob's key is real, but not a key of the source it claims."""
    forged = BOB.sign(envelope(source="unit/110108-SAT"))
    refusal = keys(ALICE.record(T0), BOB.record(T0)).check(forged, NOW)
    assert refusal is not None
    assert refusal.code == "unknown_key"


def test_no_such_key_is_an_unknown_key() -> None:
    refusal = keys(BOB.record(T0)).check(ALICE.sign(envelope()), NOW)
    assert refusal is not None
    assert refusal.code == "unknown_key"


def test_a_source_nobody_signs_as_is_an_unknown_key() -> None:
    refusal = keys(ALICE.record(T0)).check(ALICE.sign(envelope(source="platform/designation")), NOW)
    assert refusal is not None
    assert refusal.code == "unknown_key"


def test_the_portal_signs_as_the_portal() -> None:
    assert keys(PORTAL.record(T0)).check(PORTAL.sign(envelope(source="portal")), NOW) is None
    assert principal_of("portal") == "portal"
    assert principal_of("unit/440000-GAC") == "unit:440000-GAC"
    assert principal_of("unit/") is None
    assert principal_of("platform/sharing") is None


@pytest.mark.parametrize(
    ("record", "valid"),
    [
        (ALICE.record(NOW + timedelta(seconds=1)), False),  # not yet
        (ALICE.record(NOW), True),  # from not_before on
        (ALICE.record(T0, NOW), False),  # not_after is the first instant it no longer verifies
        (ALICE.record(T0, NOW + timedelta(seconds=1)), True),
        (ALICE.record(T0).model_copy(update={"revoked_at": NOW}), False),
        (ALICE.record(T0).model_copy(update={"revoked_at": NOW + timedelta(seconds=1)}), True),
    ],
)
def test_validity_is_judged_at_the_time_of_receipt(record: KeyRecord, valid: bool) -> None:
    refusal = keys(record).check(ALICE.sign(envelope()), NOW)
    assert (refusal is None) is valid
    assert valid or (refusal is not None and refusal.code == "key_not_valid")


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e["data"].update(list="red"),
        lambda e: e.update(source="unit/110000-SAT", signaturekid=BOB.kid),  # Bob's kid on Alice's bytes
        lambda e: e.update(time="2026-12-03T17:00:01+08:00"),
        lambda e: e.update(extra="added after signing"),
        lambda e: e.update(signature=e["signature"][:-2] + ("AA" if e["signature"][-2:] != "AA" else "AB")),
        lambda e: e.update(signature="not base64 !"),
        lambda e: e.update(signature=e["signature"] + "=="),
        lambda e: e.update(signature=b64url(b"short")),
        # The last character of 64 bytes in base64url carries 2 bits and 4 unused ones: flipping an
        # unused bit decodes to the same bytes, and a strict decoder refuses it all the same.
        lambda e: e.update(signature=e["signature"][:-1] + _B64[_B64.index(e["signature"][-1]) ^ 1]),
    ],
)
def test_a_body_changed_after_signing_or_a_malformed_signature_is_a_bad_signature(change: Any) -> None:
    signed = ALICE.sign(envelope())
    change(signed)
    refusal = keys(ALICE.record(T0), BOB.record(T0)).check(signed, NOW)
    assert refusal is not None
    assert refusal.code == "bad_signature"


def test_only_the_canonical_base64url_of_a_value_decodes() -> None:
    assert unb64url(b64url(bytes(range(64)))) == bytes(range(64))
    text = b64url(bytes(64))  # 86 characters, the last one "A"
    with pytest.raises(ValueError, match="canonical"):
        unb64url(text[:-1] + "B")


def test_rotation_both_keys_verify_while_both_are_valid() -> None:
    new = Signer.generate("k-110108-SAT-2", "unit:110108-SAT")
    v = keys(ALICE.record(T0, NOW + timedelta(hours=1)), new.record(NOW - timedelta(hours=1)))
    assert v.check(ALICE.sign(envelope()), NOW) is None
    assert v.check(new.sign(envelope()), NOW) is None
    later = NOW + timedelta(hours=2)
    old = v.check(ALICE.sign(envelope()), later)
    assert old is not None
    assert old.code == "key_not_valid"
    assert v.check(new.sign(envelope()), later) is None


def test_a_seed_round_trips() -> None:
    again = Signer.from_seed(ALICE.kid, ALICE.principal, ALICE.seed)
    assert again.public_key == ALICE.public_key
    assert keys(ALICE.record(T0)).check(again.sign(envelope()), NOW) is None


@given(st.dictionaries(st.text(max_size=8), st.one_of(st.text(), st.integers(-(2**53) + 1, 2**53 - 1), st.booleans())))
def test_any_json_data_signs_and_verifies(data: dict[str, Any]) -> None:
    signed = ALICE.sign(envelope(data=data))
    assert keys(ALICE.record(T0)).check(orjson.loads(orjson.dumps(signed)), NOW) is None
    assert canonical(signed) == rfc8785.dumps({k: v for k, v in signed.items() if k != "signature"})


def test_an_envelope_jcs_cannot_express_is_refused_not_raised() -> None:
    signed = ALICE.sign(envelope())
    signed["data"]["amount"] = 2**60  # beyond the integers JSON numbers carry exactly
    refusal = keys(ALICE.record(T0)).check(signed, NOW)
    assert refusal is not None
    assert refusal.code == "bad_signature"
