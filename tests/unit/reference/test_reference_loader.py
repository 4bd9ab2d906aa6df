"""Bad catalogue files are refused whole, each problem with its file, line and reason."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from credit_common.reference.loader import CatalogError, Problem, catalog_files, load_files

FIELDS = """\
- code: taxation
  name: Taxation
  key_field: true
- code: customs
  name: Customs
  key_field: true
"""

UNIT = """\
- code: 100000-SAT
  name: State Taxation Administration
  level: national
  region: "100000"
  unit_kind: department
  authorised_fields: [taxation]
  parent: null
  liaison: {name: Zhang Wei, title: Director, phone: "010-1"}
"""

STANDARD = """\
- code: taxation-black
  field: taxation
  list: black
  title: Major tax violations
  legal_basis: SAT Order No. 54
  min_level: county
  default_period_days: 1095
  max_period_days: 1095
  restorable: true
  min_days_before_restoration: 365
  public: true
  status: in_force
  version: 1
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(*paths: Path) -> list[Problem]:
    with pytest.raises(CatalogError) as caught:
        load_files(paths)
    return caught.value.problems


def test_a_good_catalogue_loads(tmp_path: Path) -> None:
    write(tmp_path, "fields.yaml", FIELDS)
    write(tmp_path, "units.yaml", UNIT)
    write(tmp_path, "standards.yaml", STANDARD)
    records = load_files([tmp_path])
    assert [r.kind for r in records] == ["field", "field", "unit", "standard"]


def test_unknown_field_code(tmp_path: Path) -> None:
    fields = write(tmp_path, "fields.yaml", FIELDS)
    units = write(tmp_path, "units.yaml", UNIT.replace("[taxation]", "[taxation, taxatoin]"))
    [problem] = problems_of(fields, units)
    assert problem.file == str(units)
    assert problem.line == 6
    assert "unknown field code 'taxatoin'" in problem.reason
    assert "100000-SAT" in problem.reason


def test_unknown_field_in_a_measure(tmp_path: Path) -> None:
    fields = write(tmp_path, "fields.yaml", FIELDS)
    mous = write(
        tmp_path,
        "mous.yaml",
        """\
        - code: mou-tax
          title: MOU on major tax violations
          signed_on: 2014-12-30
          fields: [taxation]
          measures:
            - code: tax-black-customs
              measure_kind: punishment
              list: black
              implementing_fields: [customs]
              description: Stricter customs inspection.
              legal_basis: MOU
            - code: tax-black-procurement
              measure_kind: punishment
              list: black
              implementing_fields:
                - customs
                - government_procurement
              description: Barred from government procurement.
              legal_basis: MOU
        """,
    )
    [problem] = problems_of(fields, mous)
    assert (problem.file, problem.line) == (str(mous), 17)
    assert "unknown field code 'government_procurement'" in problem.reason


def test_black_period_longer_than_three_years(tmp_path: Path) -> None:
    fields = write(tmp_path, "fields.yaml", FIELDS)
    standards = write(tmp_path, "standards.yaml", STANDARD.replace("max_period_days: 1095", "max_period_days: 1460"))
    [problem] = problems_of(fields, standards)
    assert (problem.file, problem.line) == (str(standards), 8)
    assert "black standard allows at most 1095 days" in problem.reason


def test_key_scrutiny_period_and_default_above_maximum(tmp_path: Path) -> None:
    fields = write(tmp_path, "fields.yaml", FIELDS)
    text = STANDARD.replace("list: black", "list: key_scrutiny").replace(
        "max_period_days: 1095", "max_period_days: 731"
    )
    standards = write(tmp_path, "standards.yaml", text)
    problems = problems_of(fields, standards)
    assert [(p.line, p.reason.split(": ", 1)[1]) for p in problems] == [
        (7, "default_period_days 1095 exceeds max_period_days 731"),
        (8, "a key_scrutiny standard allows at most 730 days (got max_period_days 731)"),
    ]


def test_duplicate_code_across_files(tmp_path: Path) -> None:
    write(tmp_path, "fields.yaml", FIELDS)
    extra = write(
        tmp_path,
        "more-fields.yaml",
        """\
        # a second file of mixed records: every record says its kind
        - kind: field
          code: finance
          name: Finance
          key_field: true
        - kind: field
          code: customs
          name: Customs again
          key_field: false
        """,
    )
    [problem] = problems_of(tmp_path)
    assert (problem.file, problem.line) == (str(extra), 7)
    assert "duplicate key field:customs" in problem.reason
    assert f"{tmp_path / 'fields.yaml'}:4" in problem.reason


def test_duplicate_key_inside_a_record(tmp_path: Path) -> None:
    fields = write(tmp_path, "fields.yaml", FIELDS + "  key_field: false\n")
    [problem] = problems_of(fields)
    assert (problem.line, problem.reason) == (7, "key 'key_field' given twice in one mapping")


def test_wrong_type(tmp_path: Path) -> None:
    fields = write(tmp_path, "fields.yaml", FIELDS)
    standards = write(tmp_path, "standards.yaml", STANDARD.replace("version: 1", "version: first"))
    [problem] = problems_of(fields, standards)
    assert (problem.file, problem.line) == (str(standards), 13)
    assert problem.reason.startswith("standard taxation-black: version: Input should be a valid integer")


def test_wrong_enum_value_in_a_nested_place(tmp_path: Path) -> None:
    fields = write(tmp_path, "fields.yaml", FIELDS)
    units = write(tmp_path, "units.yaml", UNIT.replace("level: national", "level: ministry"))
    [problem] = problems_of(fields, units)
    assert problem.line == 3
    assert "level:" in problem.reason
    assert "'ministry'" in problem.reason


def test_missing_required_key(tmp_path: Path) -> None:
    fields = write(tmp_path, "fields.yaml", FIELDS)
    units = write(tmp_path, "units.yaml", UNIT.replace("  name: State Taxation Administration\n", ""))
    [problem] = problems_of(fields, units)
    assert (problem.file, problem.line) == (str(units), 1)
    assert problem.reason == "unit 100000-SAT: name: required key missing"


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    fields = write(tmp_path, "fields.yaml", FIELDS.replace("  key_field: true\n", "  key_feild: true\n", 1))
    problems = problems_of(fields)
    assert [(p.line, p.reason) for p in problems] == [
        (1, "field taxation: key_field: required key missing"),
        (3, "field taxation: key_feild: unknown key (not in the contract)"),
    ]


def test_unknown_parent_and_bad_association(tmp_path: Path) -> None:
    fields = write(tmp_path, "fields.yaml", FIELDS)
    units = write(
        tmp_path,
        "units.yaml",
        UNIT
        + """\
- code: 440000-SAT
  name: Guangdong Provincial Tax Service
  level: provincial
  region: 440000
  unit_kind: department
  authorised_fields: [taxation]
  parent: 100000-STA
- code: 440000-CTA
  name: A provincial association
  level: provincial
  region: "440000"
  unit_kind: association
  authorised_fields: [customs]
  parent: 440000-SAT
""",
    )
    problems = problems_of(fields, units)
    assert [(p.line, p.reason) for p in problems] == [
        (15, "unit 440000-SAT: unknown parent unit '100000-STA'"),
        (18, "unit 440000-CTA: only national industry associations are authorised (level national)"),
        (21, "unit 440000-CTA: fields ['customs'] are not among those of its authorising department"),
        (22, "unit 440000-CTA: an association's parent is a national department, not 440000-SAT"),
    ]


def test_region_must_be_six_digits(tmp_path: Path) -> None:
    fields = write(tmp_path, "fields.yaml", FIELDS)
    units = write(tmp_path, "units.yaml", UNIT.replace('region: "100000"', 'region: "10000"'))
    [problem] = problems_of(fields, units)
    assert problem.line == 4
    assert "region: String should match pattern" in problem.reason


def test_calendar_dates_must_be_in_the_year(tmp_path: Path) -> None:
    calendar = write(
        tmp_path,
        "calendar.yaml",
        """\
        - code: 2027
          holidays:
            - 2027-01-01
            - 2028-01-01
          working_weekend_days:
            - 2027-01-04
        """,
    )
    problems = problems_of(calendar)
    assert [(p.line, p.reason) for p in problems] == [
        (4, "calendar 2027: 2028-01-01 is not in 2027"),
        (6, "calendar 2027: 2027-01-04 is a Monday, not a weekend day"),
    ]


def test_invalid_yaml_and_wrong_shapes(tmp_path: Path) -> None:
    broken = write(tmp_path, "fields.yaml", "- code: taxation\n  name: [unclosed\n")
    mapping = write(tmp_path, "units.yaml", "code: 100000-SAT\n")
    no_kind = write(tmp_path, "extra.yaml", "- code: x\n  name: X\n")
    problems = problems_of(broken, mapping, no_kind)
    assert [(Path(p.file).name, p.line) for p in problems] == [
        ("extra.yaml", 1),
        ("fields.yaml", 3),
        ("units.yaml", 1),
    ]
    assert problems[0].reason.startswith("no kind")
    assert problems[1].reason.startswith("not valid YAML")
    assert problems[2].reason == "a catalogue file is a YAML list of records"


def test_kind_must_agree_with_the_file(tmp_path: Path) -> None:
    units = write(tmp_path, "units.yaml", "- kind: field\n  code: x\n  name: X\n  key_field: true\n")
    [problem] = problems_of(units)
    assert (problem.line, problem.reason) == (1, "kind 'field' in a file of 'unit' records")


def test_one_bad_file_refuses_everything(tmp_path: Path) -> None:
    write(tmp_path, "fields.yaml", FIELDS)
    write(tmp_path, "units.yaml", UNIT)
    write(tmp_path, "standards.yaml", STANDARD.replace("field: taxation", "field: tax"))
    with pytest.raises(CatalogError) as caught:
        load_files([tmp_path])
    assert len(caught.value.problems) == 1
    assert "standards.yaml:2: standard taxation-black: unknown field code 'tax'" in str(caught.value)


def test_missing_path_and_directory_expansion(tmp_path: Path) -> None:
    write(tmp_path, "b.yaml", "[]")
    write(tmp_path, "a.yml", "")
    write(tmp_path, "README.md", "not a catalogue")
    assert [p.name for p in catalog_files([tmp_path, tmp_path / "a.yml"])] == ["a.yml", "b.yaml"]
    [problem] = problems_of(tmp_path / "nope.yaml")
    assert problem.reason == "no such file or directory"
