"""Credit subjects' identifiers: normalisation, validation (python-stdnum) and public masking.

A legal person or other organisation has an 18-character Unified Social Credit Code (GB 32100,
check character mod 31), a natural person an 18-character resident identity number (GB 11643,
ISO 7064 MOD 11-2, with a real birth date); `other` schemes (passports) carry no checksum.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stdnum.cn import ric, uscc
from stdnum.exceptions import InvalidChecksum, ValidationError

from credit_common.contracts.common import ErrorCode, ErrorDetail, IdScheme, SubjectKind

OTHER_MAX_LENGTH = 64

_SCHEMES_FOR_KIND: dict[SubjectKind, frozenset[IdScheme]] = {
    SubjectKind.LEGAL_PERSON: frozenset({IdScheme.USCC, IdScheme.OTHER}),
    SubjectKind.OTHER_ORG: frozenset({IdScheme.USCC, IdScheme.OTHER}),
    SubjectKind.NATURAL_PERSON: frozenset({IdScheme.RESIDENT_ID, IdScheme.OTHER}),
}
_SEPARATORS = re.compile(r"[\s\-]+")
_RESIDENT_ID = re.compile(r"^\d{17}[\dX]$")
# The right character is not told: "fixing" it would turn a typo elsewhere into a valid wrong id.
_CHECKSUM_MESSAGE = "the check character does not match; for a genuine code, send checksum_override with a reason"
_EARLIEST_BIRTH_YEAR = 1900  # no one alive holds an 18-digit number with an earlier birth year


@dataclass(frozen=True)
class IdentifierResult:
    """The outcome of `check_identifier`: the normalised `id`, or the `error` that refuses it.

    `checksum_overridden` is True when only the check character failed and an override accepted it.
    """

    id: str | None
    error: ErrorDetail | None = None
    checksum_overridden: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def normalise(scheme: IdScheme | str, raw: str) -> str:
    """The identifier as stored and keyed: upper case, without whitespace or `-` (any scheme)."""
    IdScheme(scheme)  # an unknown scheme is a programming error here, not a request's
    return _SEPARATORS.sub("", raw).upper()


def check_identifier(
    scheme: IdScheme | str,
    kind: SubjectKind | str,
    raw: str,
    checksum_override: bool,
    *,
    field: str = "subject.id",
) -> IdentifierResult:
    """Validate a subject's identifier and return it normalised, or the error that refuses it.

    `invalid_identifier`: the scheme does not fit the subject kind (uscc for legal persons and
    other organisations, resident_id for natural persons, `other` for any), or the length, format,
    characters or (resident id) birth date are wrong. `invalid_checksum`: everything else is right
    but the check character fails; with `checksum_override` that is accepted instead (the caller
    keeps the override with the record).
    """
    scheme, kind = IdScheme(scheme), SubjectKind(kind)
    if scheme not in _SCHEMES_FOR_KIND[kind]:
        return _refuse(ErrorCode.INVALID_IDENTIFIER, field, f"scheme {scheme} does not identify a {kind}")
    number = normalise(scheme, raw)
    if any(c.isdigit() and not c.isascii() for c in number):
        # Full-width or other script digits (`１１０１...`) would make a second identity for the
        # same subject: refused, never folded (contracts.md, Integrity rules).
        return _refuse(ErrorCode.INVALID_IDENTIFIER, field, "digits must be ASCII 0-9")
    if scheme is not IdScheme.OTHER and not number.isascii():
        return _refuse(ErrorCode.INVALID_IDENTIFIER, field, f"a {scheme} is ASCII letters and digits")
    if scheme is IdScheme.OTHER:
        if not number or len(number) > OTHER_MAX_LENGTH or not number.isprintable():
            return _refuse(ErrorCode.INVALID_IDENTIFIER, field, f"must be 1 to {OTHER_MAX_LENGTH} printable characters")
        return IdentifierResult(id=number)
    problem = _uscc_problem(number) if scheme is IdScheme.USCC else _resident_id_problem(number)
    if problem is None:
        return IdentifierResult(id=number)
    code, message = problem
    if code is ErrorCode.INVALID_CHECKSUM and checksum_override:
        return IdentifierResult(id=number, checksum_overridden=True)
    return _refuse(code, field, message)


def _refuse(code: ErrorCode, field: str, message: str) -> IdentifierResult:
    return IdentifierResult(id=None, error=code.detail(field, message))


def _uscc_problem(number: str) -> tuple[ErrorCode, str] | None:
    try:
        uscc.validate(number)  # length, then characters, then the check character
    except InvalidChecksum:
        return ErrorCode.INVALID_CHECKSUM, _CHECKSUM_MESSAGE
    except ValidationError:
        return ErrorCode.INVALID_IDENTIFIER, "a USCC is 18 characters: 8 digits, then digits or letters"
    return None


def _resident_id_problem(number: str) -> tuple[ErrorCode, str] | None:
    # Our own order rather than ric.validate's: a wrong birth date must win over a wrong check
    # digit, and the birth-place table is not consulted (new county codes would be refused).
    if not _RESIDENT_ID.match(number):
        return ErrorCode.INVALID_IDENTIFIER, "a resident id is 17 digits and a check digit or X"
    try:
        born = ric.get_birth_date(number)
    except ValidationError:
        return ErrorCode.INVALID_IDENTIFIER, f"no such birth date: {number[6:14]}"
    if born.year < _EARLIEST_BIRTH_YEAR:
        return ErrorCode.INVALID_IDENTIFIER, f"impossible birth date: {born.isoformat()}"
    if number[-1] != ric.calc_check_digit(number):
        return ErrorCode.INVALID_CHECKSUM, _CHECKSUM_MESSAGE
    return None


def mask_resident_id(number: str) -> str:
    """The public form of a resident id: the first 6 and last 4 characters kept, the rest `*`
    (`110101199003071234` -> `110101********1234`). Too short to keep anything safely (10
    characters or fewer): every character masked."""
    if len(number) <= 10:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 10) + number[-4:]
