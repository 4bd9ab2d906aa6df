"""Identifier normalisation, validation (USCC, resident id, other) and public masking."""

from __future__ import annotations

import pytest
from credit_common.contracts.common import ErrorCode, IdScheme, SubjectKind
from credit_common.identifiers import IdentifierResult, check_identifier, mask_resident_id, normalise
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import ric, uscc


def _uscc(body: str) -> str:
    return body + uscc.calc_check_digit(body)


def _ric(body: str) -> str:
    return body + ric.calc_check_digit(body + "0")


def _wrong(number: str, alphabet: str) -> str:
    """`number` with another character from `alphabet` in place of its check character."""
    return number[:-1] + next(c for c in alphabet if c != number[-1])


VALID_USCC = [_uscc("91110000101623741"), _uscc("91350203M0001QAY9"), _uscc("12100000400000624")]
VALID_RIC = [_ric("11010119900307123"), _ric("44010619851231002"), _ric("51010720000229876")]
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def _code(result: IdentifierResult) -> ErrorCode | None:
    return result.error.code if result.error else None


def test_the_examples_are_really_valid() -> None:
    assert VALID_USCC[0] == "91110000101623741K"
    assert all(uscc.is_valid(number) for number in VALID_USCC)
    assert all(ric.is_valid(number) for number in VALID_RIC)


@pytest.mark.parametrize("number", VALID_USCC)
@pytest.mark.parametrize("kind", [SubjectKind.LEGAL_PERSON, SubjectKind.OTHER_ORG])
def test_valid_uscc(number: str, kind: SubjectKind) -> None:
    result = check_identifier(IdScheme.USCC, kind, number, checksum_override=False)
    assert result == IdentifierResult(id=number)
    assert result.ok


@pytest.mark.parametrize("number", VALID_USCC)
def test_uscc_with_a_wrong_check_character(number: str) -> None:
    wrong = _wrong(number, USCC_ALPHABET)
    result = check_identifier("uscc", "legal_person", wrong, checksum_override=False)
    assert _code(result) is ErrorCode.INVALID_CHECKSUM
    assert result.id is None
    assert result.error is not None
    assert result.error.field == "subject.id"


def test_checksum_override_accepts_and_says_so() -> None:
    wrong = _wrong(VALID_USCC[0], USCC_ALPHABET)
    result = check_identifier("uscc", "legal_person", wrong, checksum_override=True)
    assert result == IdentifierResult(id=wrong, checksum_overridden=True)


def test_a_real_code_that_fails_its_check() -> None:
    refused = check_identifier("uscc", "legal_person", "91350203M0001QAY9B", False)
    assert _code(refused) is ErrorCode.INVALID_CHECKSUM
    accepted = check_identifier("uscc", "legal_person", "91350203M0001QAY9B", True)
    assert accepted.id == "91350203M0001QAY9B"
    assert accepted.checksum_overridden


@pytest.mark.parametrize(
    "raw",
    [
        "91110000101623741",
        "91110000101623741KK",
        "A1110000101623741K",
        "9111000010162374IK",
        "911100001O1623741K",
        "",
    ],
    ids=["short", "long", "letter-in-region", "letter-I", "letter-O", "empty"],
)
def test_malformed_uscc_is_an_invalid_identifier_even_with_an_override(raw: str) -> None:
    result = check_identifier("uscc", "legal_person", raw, checksum_override=True)
    assert _code(result) is ErrorCode.INVALID_IDENTIFIER


def test_lower_case_spaces_and_dashes_are_normalised() -> None:
    assert normalise("uscc", " 9111 0000-1016\t23741k\n") == "91110000101623741K"
    result = check_identifier("uscc", "legal_person", "9111 0000 1016 2374 1k", False)
    assert result.id == "91110000101623741K"
    assert check_identifier("resident_id", "natural_person", "110101 19900307-1233", False).id == VALID_RIC[0]
    assert normalise("resident_id", "44010619851231002x") == "44010619851231002X"


@pytest.mark.parametrize("number", VALID_RIC)
def test_valid_resident_id(number: str) -> None:
    assert check_identifier("resident_id", "natural_person", number, False) == IdentifierResult(id=number)


def test_resident_id_with_a_lower_case_x_is_normalised() -> None:
    number = next(_ric(f"1101011990030712{d}") for d in range(10) if _ric(f"1101011990030712{d}").endswith("X"))
    assert check_identifier("resident_id", "natural_person", number.lower(), False).id == number


@pytest.mark.parametrize(
    "body",
    ["11010119900230123", "11010119901307123", "11010120010229123", "11010118000101123", "11010119900000123"],
    ids=["feb-30", "month-13", "not-a-leap-year", "before-1900", "day-0"],
)
def test_resident_id_with_an_impossible_birth_date(body: str) -> None:
    for number in (_ric(body), _wrong(_ric(body), "0123456789X")):  # right or wrong check digit
        result = check_identifier("resident_id", "natural_person", number, checksum_override=True)
        assert _code(result) is ErrorCode.INVALID_IDENTIFIER


@pytest.mark.parametrize("number", VALID_RIC)
def test_resident_id_with_a_bad_check_digit(number: str) -> None:
    wrong = _wrong(number, "0123456789X")
    assert _code(check_identifier("resident_id", "natural_person", wrong, False)) is ErrorCode.INVALID_CHECKSUM
    assert check_identifier("resident_id", "natural_person", wrong, True).checksum_overridden


@pytest.mark.parametrize(
    "raw", ["1101011990030712", "11010119900307123Y", "X10101199003071233", "110101199003071233456"]
)
def test_malformed_resident_id(raw: str) -> None:
    assert _code(check_identifier("resident_id", "natural_person", raw, True)) is ErrorCode.INVALID_IDENTIFIER


@pytest.mark.parametrize("kind", list(SubjectKind))
def test_other_scheme_is_accepted_without_a_checksum(kind: SubjectKind) -> None:
    result = check_identifier("other", kind, "e 1234-5678", False)
    assert result == IdentifierResult(id="E12345678")


@pytest.mark.parametrize("raw", ["", "  - ", "A" * 65, "AB\x00CD"])
def test_other_scheme_still_needs_a_sensible_value(raw: str) -> None:
    assert _code(check_identifier("other", "natural_person", raw, True)) is ErrorCode.INVALID_IDENTIFIER


@pytest.mark.parametrize(
    ("scheme", "kind", "number"),
    [
        ("uscc", "natural_person", VALID_USCC[0]),
        ("resident_id", "legal_person", VALID_RIC[0]),
        ("resident_id", "other_org", VALID_RIC[0]),
    ],
)
def test_a_scheme_that_does_not_fit_the_kind_is_refused(scheme: str, kind: str, number: str) -> None:
    result = check_identifier(scheme, kind, number, checksum_override=True)
    assert _code(result) is ErrorCode.INVALID_IDENTIFIER


def _fullwidth(number: str) -> str:
    return "".join(chr(ord(c) - ord("0") + 0xFF10) if c.isdigit() else c for c in number)


@pytest.mark.parametrize(
    ("scheme", "kind", "number"),
    [
        ("resident_id", "natural_person", _fullwidth(VALID_RIC[0])),
        ("uscc", "legal_person", _fullwidth(VALID_USCC[0])),
        ("other", "natural_person", _fullwidth("E12345678")),
        ("resident_id", "natural_person", VALID_RIC[0][:5] + "\u0661" + VALID_RIC[0][6:]),  # an Arabic-Indic 1
    ],
)
def test_digits_other_than_ascii_are_refused_not_folded(scheme: str, kind: str, number: str) -> None:
    # `１１０１...` is a second spelling of one person's number: accepted, it would be a second
    # identity for the same subject (contracts.md, Integrity rules).
    assert _code(check_identifier(scheme, kind, number, True)) is ErrorCode.INVALID_IDENTIFIER


def test_the_error_field_can_be_named() -> None:
    result = check_identifier("uscc", "legal_person", "123", False, field="objector.id")
    assert result.error is not None
    assert result.error.field == "objector.id"


def test_masking() -> None:
    assert mask_resident_id("110101199003071234") == "110101********1234"
    assert mask_resident_id("1234567890") == "**********"
    assert mask_resident_id("") == ""


@given(st.text(min_size=11, max_size=40))
def test_masking_keeps_exactly_the_first_6_and_last_4(number: str) -> None:
    masked = mask_resident_id(number)
    assert len(masked) == len(number)
    assert masked[:6] == number[:6]
    assert masked[-4:] == number[-4:]
    assert masked[6:-4] == "*" * (len(number) - 10)


@given(st.text(alphabet="0123456789X", min_size=18, max_size=18))
def test_masking_hides_every_middle_digit_of_a_resident_id(number: str) -> None:
    masked = mask_resident_id(number)
    assert masked == number[:6] + "********" + number[-4:]


@given(st.text(max_size=10))
def test_masking_a_short_value_hides_it_all(number: str) -> None:
    assert mask_resident_id(number) == "*" * len(number)
