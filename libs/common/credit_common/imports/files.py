"""Reading a historical import file (contracts.md, Additions): JSONL, one `ImportEntry` object a
line, or CSV with one flat column per field (`CSV_COLUMNS`).

Both are read as a stream of `Line`s, each validated on its own, so a file of a million entries is
never held in memory: the caller keeps the dicts of the batch it is building and nothing more. A
line that breaks the contract, or repeats a `ref` seen earlier in the file, is refused here with
the codes the platform would answer (`schema_violation`, `duplicate_id`) and never sent."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from pydantic import ValidationError

from credit_common.contracts.common import ErrorCode
from credit_common.contracts.requests import ImportEntry

#: The CSV layout: the entry flattened, `<part>_<field>` for the subject's and the decision's
#: fields. An empty cell is an absent field.
CSV_COLUMNS = (
    "ref",
    "list",
    "standard",
    "subject_kind",
    "subject_scheme",
    "subject_id",
    "subject_name",
    "subject_legal_representative",
    "decision_document_no",
    "decision_decided_on",
    "decision_legal_basis",
    "decision_facts",
    "effective_from",
    "effective_to",
    "removed_on",
    "removal_reason",
    "checksum_override_reason",
)
_NESTED = {"subject_": "subject", "decision_": "decision", "checksum_override_": "checksum_override"}
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
CSV_SUFFIXES = frozenset({".csv"})
_BOM = b"\xef\xbb\xbf"
_MESSAGE_MAX = 2_000  # an ErrorDetail's message, as the platform's answers bound it


class ImportFileError(Exception):
    """The file as a whole cannot be read (its kind, its header, its encoding): nothing is sent."""


class Line(NamedTuple):
    """One entry of the file: where it starts (1-based line), its `ref` when one can be read, the
    entry as it is sent (None when refused), and why it is refused (empty when it is not)."""

    number: int
    ref: str | None
    entry: dict[str, Any] | None
    errors: list[dict[str, Any]]


def error(code: ErrorCode | str, field: str | None, message: str) -> dict[str, Any]:
    """An error as the platform's answers carry it (`{code, field, message}`)."""
    return {"code": str(code), "field": field, "message": message[:_MESSAGE_MAX]}


def file_kind(path: Path) -> str:
    """`jsonl` or `csv`, by the file's suffix (what `credit-import` takes)."""
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in CSV_SUFFIXES:
        return "csv"
    raise ImportFileError(f"{path}: a .jsonl or .csv file is imported, not {suffix or 'a file without suffix'}")


def file_digest(path: Path) -> str:
    """The SHA-256 (hex) of the file's bytes: it names the import (its batch ids, its state file),
    so the same file resumes and a changed file is a new import."""
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def count_entries(path: Path) -> int:
    """How many entries `read_lines` will yield (the progress bar's total), without validating."""
    if file_kind(path) == "jsonl":
        with path.open("rb") as f:
            return sum(1 for raw in f if raw.strip() and raw.strip() != _BOM)
    return sum(1 for _ in _csv(path, check_only=True))


def read_lines(path: Path) -> Iterator[Line]:
    """Every entry of the file in order, validated against the contract, a repeated `ref`
    refused `duplicate_id` on its later occurrences (a `ref` is one entry of the unit's)."""
    lines = _jsonl(path) if file_kind(path) == "jsonl" else _csv(path)
    seen: set[str] = set()
    for number, doc, errors in lines:
        ref = _ref_of(doc)
        entry: dict[str, Any] | None = None
        if not errors and doc is not None:
            entry, errors = _validated(doc)
        if ref is not None:
            if ref in seen:
                errors = [error(ErrorCode.DUPLICATE_ID, "ref", f"ref {ref!r} is repeated in the file"), *errors]
            seen.add(ref)
        yield Line(number, ref, None if errors else entry, errors)


def _validated(doc: dict[str, Any]) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    try:
        model = ImportEntry.model_validate(doc)
    except ValidationError as exc:
        return None, [
            error(ErrorCode.SCHEMA_VIOLATION, ".".join(str(p) for p in e["loc"]) or None, e["msg"])
            for e in exc.errors(include_url=False)
        ]
    # Sent as the contract's JSON form (dates ISO, no nulls): the same line always gives the
    # same bytes, whatever spelling the file used for an absent field.
    return model.model_dump(mode="json", exclude_none=True), []


def _ref_of(doc: dict[str, Any] | None) -> str | None:
    ref = doc.get("ref") if doc is not None else None
    return ref if isinstance(ref, str) and 0 < len(ref) <= 200 else None


_Raw = tuple[int, dict[str, Any] | None, list[dict[str, Any]]]


def _jsonl(path: Path) -> Iterator[_Raw]:
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            if not raw.strip():
                continue
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield number, None, [error(ErrorCode.SCHEMA_VIOLATION, None, f"not JSON: {exc}")]
                continue
            if not isinstance(doc, dict):
                yield number, None, [error(ErrorCode.SCHEMA_VIOLATION, None, "an entry is a JSON object")]
                continue
            yield number, doc, []


def _open_csv(path: Path) -> Any:
    # utf-8-sig: a byte-order mark (what spreadsheet programs write) is not part of the first column.
    return path.open(encoding="utf-8-sig", newline="")


def _has_cells(row: list[str]) -> bool:
    return any(cell != "" for cell in row)


def _csv(path: Path, *, check_only: bool = False) -> Iterator[_Raw]:
    """The rows of a CSV file as entries (`check_only`: as empty ones, for counting them and
    finding the file's own faults, its header or its encoding, before anything is sent)."""
    with _open_csv(path) as f:
        rows = csv.reader(f, strict=True)
        try:
            header = [name.strip() for name in next(rows, [])]
            _check_header(path, header)
            start = rows.line_num + 1
            for row in rows:
                number, start = start, rows.line_num + 1  # a quoted cell may span lines
                if not _has_cells(row):
                    continue
                if check_only:
                    yield number, None, []
                    continue
                if len(row) != len(header):
                    message = f"{len(row)} cells; the header has {len(header)}"
                    yield number, None, [error(ErrorCode.SCHEMA_VIOLATION, None, message)]
                    continue
                yield number, _nest(dict(zip(header, row, strict=True))), []
        except UnicodeDecodeError as exc:
            raise ImportFileError(f"{path}: not UTF-8 after line {rows.line_num}: {exc.reason}") from None
        except csv.Error as exc:
            raise ImportFileError(f"{path}: line {rows.line_num}: {exc}") from None


def _check_header(path: Path, header: list[str]) -> None:
    if not header:
        return
    unknown = [name for name in header if name not in CSV_COLUMNS]
    if unknown:
        raise ImportFileError(
            f"{path}: unknown column{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"the columns are {', '.join(CSV_COLUMNS)}"
        )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ImportFileError(f"{path}: column{'s' if len(repeated) > 1 else ''} {', '.join(repeated)} twice")


def _nest(cells: dict[str, str]) -> dict[str, Any]:
    """The flat row as the entry's JSON shape; an empty cell is an absent field."""
    doc: dict[str, Any] = {}
    for column, value in cells.items():
        if value == "":
            continue
        for prefix, part in _NESTED.items():
            if column.startswith(prefix):
                doc.setdefault(part, {})[column[len(prefix) :]] = value
                break
        else:
            doc[column] = value
    return doc
