"""Reading import files: JSONL and CSV give the same entries, a byte-order mark is no column, an
unknown column stops the file, every other fault is a refusal of its own line with the line's
number, and a repeated ref is refused where it repeats."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from credit_common.imports.files import (
    CSV_COLUMNS,
    ImportFileError,
    Line,
    count_entries,
    file_digest,
    read_lines,
)

from tests.unit.imports.samples import CSV, JSONL, sample_entries


def write(path: Path, text: str, *, bom: bool = False) -> Path:
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return path


def jsonl(path: Path, *docs: dict[str, Any] | str) -> Path:
    lines = [d if isinstance(d, str) else orjson.dumps(d).decode() for d in docs]
    return write(path, "\n".join(lines) + "\n")


def codes(line: Line) -> list[tuple[str, str | None]]:
    return [(e["code"], e["field"]) for e in line.errors]


def test_the_samples_read_the_same_in_both_layouts() -> None:
    from_jsonl, from_csv = list(read_lines(JSONL)), list(read_lines(CSV))
    assert len(from_jsonl) == len(from_csv) == 8
    assert all(not line.errors for line in from_jsonl + from_csv)
    assert [line.entry for line in from_jsonl] == [line.entry for line in from_csv]
    assert [line.number for line in from_jsonl] == list(range(1, 9))
    assert [line.number for line in from_csv] == list(range(2, 10))  # after the header
    assert [line.ref for line in from_csv] == [e["ref"] for e in sample_entries()]


def test_an_entry_is_sent_in_the_contracts_form_without_nulls(tmp_path: Path) -> None:
    doc = sample_entries()[3]
    doc["subject"]["legal_representative"] = None
    doc["removed_on"] = None
    doc["removal_reason"] = None
    (line,) = read_lines(jsonl(tmp_path / "a.jsonl", doc))
    assert line.entry is not None
    assert "removed_on" not in line.entry
    assert "legal_representative" not in line.entry["subject"]
    assert line.entry == next(iter(read_lines(jsonl(tmp_path / "b.jsonl", sample_entries()[3])))).entry


def test_a_byte_order_mark_is_not_part_of_the_first_column_nor_line(tmp_path: Path) -> None:
    csv_file = write(tmp_path / "bom.csv", CSV.read_text(encoding="utf-8"), bom=True)
    json_file = write(tmp_path / "bom.jsonl", JSONL.read_text(encoding="utf-8"), bom=True)
    assert [line.entry for line in read_lines(csv_file)] == [line.entry for line in read_lines(CSV)]
    assert [line.entry for line in read_lines(json_file)] == [line.entry for line in read_lines(JSONL)]
    assert count_entries(csv_file) == count_entries(json_file) == 8


def test_an_unknown_column_stops_the_file_and_is_named(tmp_path: Path) -> None:
    header = ",".join([*CSV_COLUMNS[:5], "subject_idd", *CSV_COLUMNS[6:]])
    bad = write(tmp_path / "bad.csv", header + "\n" + CSV.read_text(encoding="utf-8").split("\n", 1)[1])
    with pytest.raises(ImportFileError, match="unknown column 'subject_idd'"):
        list(read_lines(bad))
    with pytest.raises(ImportFileError, match="subject_idd"):
        count_entries(bad)  # found before anything is sent


def test_columns_may_be_left_out_and_come_in_any_order(tmp_path: Path) -> None:
    assert CSV.read_text(encoding="utf-8").splitlines()[0].split(",") == list(CSV_COLUMNS)
    lines = [
        "effective_to,ref,list,standard,subject_kind,subject_scheme,subject_id,subject_name,"
        "decision_document_no,decision_decided_on,decision_facts,effective_from",
        "2022-03-13,r-1,black,taxation-black,legal_person,uscc,91110114JLYNHFK2B5,A Co.,"
        "D-1,2019-03-11,Facts.,2019-03-15",
    ]
    (line,) = read_lines(write(tmp_path / "short.csv", "\n".join(lines) + "\n"))
    assert line.errors == []
    assert line.entry is not None
    assert line.entry["subject"] == {
        "kind": "legal_person",
        "scheme": "uscc",
        "id": "91110114JLYNHFK2B5",
        "name": "A Co.",
    }


def test_schema_errors_name_the_field_and_the_line(tmp_path: Path) -> None:
    good = sample_entries()[0]
    no_subject_id = {**good, "ref": "x-2", "subject": {**good["subject"], "id": ""}}
    misspelt = {**good, "ref": "x-3", "efective_to": "2027-01-01"}
    half_removed = {**good, "ref": "x-4", "removed_on": "2026-05-01"}
    path = jsonl(tmp_path / "bad.jsonl", good, "", no_subject_id, "{not json", "[1, 2]", misspelt, half_removed)
    lines = list(read_lines(path))
    assert [line.number for line in lines] == [1, 3, 4, 5, 6, 7]  # the blank line 2 is skipped
    assert count_entries(path) == len(lines)
    assert lines[0].errors == []
    assert codes(lines[1]) == [("schema_violation", "subject.id")]
    assert lines[1].ref == "x-2"
    assert lines[1].entry is None
    assert codes(lines[2]) == [("schema_violation", None)]
    assert "not JSON" in lines[2].errors[0]["message"]
    assert lines[2].ref is None
    assert codes(lines[3]) == [("schema_violation", None)]
    assert codes(lines[4]) == [("schema_violation", "efective_to")]
    assert codes(lines[5]) == [("schema_violation", None)]  # removed_on without removal_reason
    assert "come together" in lines[5].errors[0]["message"]


def test_csv_lines_are_counted_as_the_file_has_them(tmp_path: Path) -> None:
    header, first, second = list(csv.reader(io.StringIO(CSV.read_text(encoding="utf-8"))))[:3]
    first[CSV_COLUMNS.index("effective_from")] = "2026-13-01"  # no such date
    second[CSV_COLUMNS.index("decision_facts")] = "Rated A-level\ntaxpayer."
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows([header, first, [], second, first[:5]])
    lines = list(read_lines(write(tmp_path / "lines.csv", out.getvalue())))
    assert [line.number for line in lines] == [2, 4, 6]  # the quoted cell spans lines 4 and 5
    assert codes(lines[0]) == [("schema_violation", "effective_from")]
    assert lines[1].errors == []
    assert lines[1].entry is not None
    assert lines[1].entry["decision"]["facts"] == "Rated A-level\ntaxpayer."
    assert codes(lines[2]) == [("schema_violation", None)]
    assert "header has 17" in lines[2].errors[0]["message"]


def test_a_repeated_ref_is_refused_where_it_repeats(tmp_path: Path) -> None:
    first, second = sample_entries()[:2]
    again = {**second, "ref": first["ref"]}
    broken_again = {**again, "list": "grey"}
    lines = list(read_lines(jsonl(tmp_path / "dup.jsonl", first, second, again, broken_again)))
    assert [line.errors for line in lines[:2]] == [[], []]
    assert codes(lines[2]) == [("duplicate_id", "ref")]
    assert lines[2].entry is None
    assert codes(lines[3]) == [("duplicate_id", "ref"), ("schema_violation", "list")]


def test_other_files_are_refused_whole(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match=r"\.jsonl or \.csv"):
        list(read_lines(write(tmp_path / "entries.xlsx", "x")))
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes(",".join(CSV_COLUMNS).encode() + b"\nr,black,taxation-black,,,,Caf\xe9\n")
    with pytest.raises(ImportFileError, match="not UTF-8"):
        list(read_lines(latin1))


def test_the_digest_is_the_sha256_of_the_bytes() -> None:
    assert file_digest(CSV) == hashlib.sha256(CSV.read_bytes()).hexdigest()
    assert file_digest(CSV) != file_digest(JSONL)
