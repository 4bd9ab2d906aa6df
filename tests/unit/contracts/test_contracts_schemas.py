"""The committed JSON Schemas are what the models generate, and stay compatible with the v1 baseline."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from credit_common.contracts import schemagen
from credit_common.contracts.registry import REGISTRY
from credit_common.contracts.schemagen import BASELINE_DIR, SCHEMA_DIR, incompatibilities

DESIGNATE = "credit.designation.designate.json"


def _baseline(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((BASELINE_DIR / name).read_text(encoding="utf-8"))
    return result


def _current(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(schemagen.generate()[name])
    return result


def test_committed_schemas_are_fresh() -> None:
    # Fails when a model changed without `python -m credit_common.contracts.schemagen`.
    assert schemagen.stale_files() == []


def test_one_schema_per_type_and_the_envelope() -> None:
    assert set(schemagen.generate()) == {f"{name}.json" for name in REGISTRY} | {"cloudevent.json"}


def test_generation_is_deterministic() -> None:
    first, second = schemagen.generate(), schemagen.generate()
    assert first == second
    text = first[DESIGNATE]
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def test_current_schemas_are_compatible_with_the_baseline() -> None:
    assert schemagen.baseline_problems() == []


def test_check_reports_stale_missing_and_extra_files(tmp_path: Path) -> None:
    for name, text in schemagen.generate().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert schemagen.stale_files(tmp_path) == []
    (tmp_path / DESIGNATE).write_text("{}\n", encoding="utf-8")
    (tmp_path / "credit.case.recorded.json").unlink()
    (tmp_path / "credit.designation.delete.json").write_text("{}\n", encoding="utf-8")
    assert sorted(schemagen.stale_files(tmp_path)) == [
        "credit.case.recorded.json: missing",
        "credit.designation.delete.json: extra (no such message type)",
        f"{DESIGNATE}: stale",
    ]


def test_check_reports_a_type_that_disappeared(tmp_path: Path) -> None:
    generated = schemagen.generate()
    for name, text in generated.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    del generated["credit.case.recorded.json"]
    assert schemagen.baseline_problems(tmp_path, generated) == [
        "credit.case.recorded.json: the message type was removed"
    ]


def test_the_command_line_check_passes_on_the_committed_files(capsys: pytest.CaptureFixture[str]) -> None:
    assert schemagen.main(["--check"]) == 0
    assert "fresh" in capsys.readouterr().out


def test_removing_a_field_is_incompatible() -> None:
    current = _current(DESIGNATE)
    del current["properties"]["effective_to"]
    del current["$defs"]["SubjectIn"]["properties"]["name"]
    assert sorted(incompatibilities(_baseline(DESIGNATE), current)) == [
        "effective_to: removed",
        "subject.name: removed",
    ]


def test_removing_a_field_deep_in_an_array_is_incompatible() -> None:
    name = "credit.restoration.apply.json"
    current = _current(name)
    del current["$defs"]["RestorationMeasure"]["properties"]["completed_on"]
    assert incompatibilities(_baseline(name), current) == ["measures[].completed_on: removed"]


def test_retyping_a_field_is_incompatible() -> None:
    current = _current(DESIGNATE)
    current["$defs"]["DecisionIn"]["properties"]["decided_on"] = {"type": "integer"}
    current["properties"]["list"] = {"type": "integer"}
    problems = incompatibilities(_baseline(DESIGNATE), current)
    assert sorted(problems) == [
        "decision.decided_on: type changed from ['string(date)'] to ['integer']",
        "list: type changed from ['string'] to ['integer']",
    ]


def test_changing_a_format_or_nullability_is_incompatible() -> None:
    current = _current(DESIGNATE)
    current["$defs"]["DecisionIn"]["properties"]["decided_on"]["format"] = "date-time"
    current["properties"]["effective_from"] = {"type": "string", "format": "date"}
    problems = incompatibilities(_baseline(DESIGNATE), current)
    assert sorted(problems) == [
        "decision.decided_on: type changed from ['string(date)'] to ['string(date-time)']",
        "effective_from: type changed from ['null', 'string(date)'] to ['string(date)']",
    ]


def test_a_variant_of_a_union_is_followed() -> None:
    name = "credit.reference.upserted.json"
    current = _current(name)
    del current["$defs"]["UnitRecord"]["properties"]["region"]
    del current["$defs"]["Liaison"]["properties"]["phone"]
    assert sorted(incompatibilities(_baseline(name), current)) == [
        "<UnitRecord>.liaison.phone: removed",
        "<UnitRecord>.region: removed",
    ]
    del current["$defs"]["FieldRecord"]
    current["oneOf"] = [v for v in current["oneOf"] if v["$ref"] != "#/$defs/FieldRecord"]
    assert "<FieldRecord>: variant removed" in incompatibilities(_baseline(name), current)


def test_adding_fields_is_compatible() -> None:
    current = _current(DESIGNATE)
    current["properties"]["priority"] = {"type": "integer"}
    current["$defs"]["SubjectIn"]["properties"]["address"] = {"type": "string"}
    assert incompatibilities(_baseline(DESIGNATE), current) == []


def test_inlining_a_ref_is_compatible() -> None:
    baseline = _baseline(DESIGNATE)
    current = copy.deepcopy(baseline)
    current["properties"]["subject"] = current["$defs"].pop("SubjectIn")
    current["properties"]["subject"]["properties"]["kind"] = current["$defs"]["SubjectKind"]
    assert incompatibilities(baseline, current) == []


def test_every_committed_file_is_valid_json_with_an_id() -> None:
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["$id"] == path.name
