"""The CSV form of list entries (exports): its columns, one entry as a row in Python, the same
columns as SQL over the entries table (the internal export is rendered by PostgreSQL's COPY).

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is neutralised with a
leading `'` (contracts.md, Integrity rules; OWASP's advice on CSV injection), so a subject named
`=HYPERLINK(...)` is text in a spreadsheet, never a formula."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from typing import Any

_CSV_FIELDS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "entry_id": lambda e: e.get("entry_id"),
    "subject_kind": lambda e: e["subject"].get("kind"),
    "subject_scheme": lambda e: e["subject"].get("scheme"),
    "subject_id": lambda e: e["subject"].get("id"),
    "subject_name": lambda e: e["subject"].get("name"),
    "legal_representative": lambda e: e["subject"].get("legal_representative"),
    "field": lambda e: e.get("field"),
    "standard": lambda e: e.get("standard"),
    "unit": lambda e: e.get("unit"),
    "region": lambda e: e.get("region"),
    "effective_from": lambda e: e.get("effective_from"),
    "effective_to": lambda e: e.get("effective_to"),
    "under_objection": lambda e: "true" if e.get("under_objection") else "false",
    "document_no": lambda e: (e.get("decision") or {}).get("document_no"),
    "decided_on": lambda e: (e.get("decision") or {}).get("decided_on"),
    "legal_basis": lambda e: (e.get("decision") or {}).get("legal_basis"),
    "facts": lambda e: (e.get("decision") or {}).get("facts"),
}
CSV_COLUMNS: tuple[str, ...] = tuple(_CSV_FIELDS)

#: The first characters a spreadsheet reads as the start of a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutral(value: str) -> str:
    """`value` as a CSV cell a spreadsheet shows as text."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _neutral_sql(expr: str) -> str:
    starts = "'=', '+', '-', '@', E'\\t', E'\\r'"
    return f"CASE WHEN left({expr}, 1) IN ({starts}) THEN E'\\'' || ({expr}) ELSE ({expr}) END"


# The same columns as SQL over an entries row's `entry` (the internal CSV export is rendered by
# PostgreSQL's COPY, several times faster than Python; a test holds the two renderings equal).
_E = "e.entry"
CSV_SQL: dict[str, str] = {
    "entry_id": f"{_E} ->> 'entry_id'",
    "subject_kind": f"{_E} -> 'subject' ->> 'kind'",
    "subject_scheme": f"{_E} -> 'subject' ->> 'scheme'",
    "subject_id": f"{_E} -> 'subject' ->> 'id'",
    "subject_name": f"{_E} -> 'subject' ->> 'name'",
    "legal_representative": f"{_E} -> 'subject' ->> 'legal_representative'",
    "field": f"{_E} ->> 'field'",
    "standard": f"{_E} ->> 'standard'",
    "unit": f"{_E} ->> 'unit'",
    "region": f"{_E} ->> 'region'",
    "effective_from": f"{_E} ->> 'effective_from'",
    "effective_to": f"{_E} ->> 'effective_to'",
    "under_objection": f"CASE WHEN ({_E} ->> 'under_objection')::boolean THEN 'true' ELSE 'false' END",
    "document_no": f"{_E} -> 'decision' ->> 'document_no'",
    "decided_on": f"{_E} -> 'decision' ->> 'decided_on'",
    "legal_basis": f"{_E} -> 'decision' ->> 'legal_basis'",
    "facts": f"{_E} -> 'decision' ->> 'facts'",
}
CSV_SQL = {column: _neutral_sql(expr) for column, expr in CSV_SQL.items()}
assert tuple(CSV_SQL) == CSV_COLUMNS
PUBLIC_CSV_COLUMNS: tuple[str, ...] = tuple(c for c in CSV_COLUMNS if c != "facts")


def csv_row(entry: dict[str, Any], columns: Sequence[str] = CSV_COLUMNS) -> list[str]:
    """One entry as a CSV row of `columns` (empty cells for what it has not)."""
    values = (_CSV_FIELDS[c](entry) for c in columns)
    return ["" if v is None else neutral(str(v)) for v in values]


def csv_text(rows: Iterable[Sequence[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()
