"""Load the YAML catalogue (deploy/catalog/) into reference records, or refuse it whole.

Each file is a YAML list of records. In `fields.yaml`, `units.yaml`, `standards.yaml`, `mous.yaml`
and `calendar.yaml` the kind is implied by the file's name (a record may still say it); in any other
file every record says its `kind`. Every problem found is reported with its file and 1-based line,
taken from the YAML node marks, and one bad record makes the whole load fail: nothing is returned,
so nothing half-checked is ever published.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, cast

import yaml
from pydantic import ValidationError

from credit_common.contracts.common import level_rank
from credit_common.contracts.reference import (
    MODEL_BY_KIND,
    REFERENCE_KINDS,
    CalendarRecord,
    CampaignRecord,
    FieldRecord,
    MouRecord,
    ReferenceRecord,
    StandardRecord,
    UnitRecord,
)

#: The kind a record has when its file is named after it.
FILE_KINDS = {
    "fields": "field",
    "units": "unit",
    "standards": "standard",
    "mous": "mou",
    "calendar": "calendar",
}
#: Region of national units ("the whole country"), so that no province counts them as its own.
NATIONAL_REGION = "100000"
#: The longest effective period a standard of each list may allow (design.md, section 3).
MAX_PERIOD_DAYS = {"black": 1095, "key_scrutiny": 730}
YAML_SUFFIXES = (".yaml", ".yml")

Loc = Sequence[str | int]


@dataclass(frozen=True, order=True)
class Problem:
    """One reason the catalogue was refused, where it is."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


class CatalogError(Exception):
    """The catalogue was refused; `problems` says every place and reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        count = len(self.problems)
        lines = "\n".join(str(p) for p in self.problems)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} in the catalogue:\n{lines}")


@dataclass
class _Entry:
    """A record as read from a file: its node (for line numbers) and, once valid, the model."""

    file: str
    node: yaml.MappingNode
    kind: str
    code: str | None
    record: ReferenceRecord | None = None

    def line(self, *loc: str | int) -> int:
        return _line(self.node, loc)


# --- entry point ---------------------------------------------------------------------------------


def catalog_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files named, with each directory replaced by its `*.yaml`/`*.yml` files (sorted, not
    recursive); each file once. A path that does not exist is kept (and reported by the load)."""
    out: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        found = (
            sorted(p for p in path.iterdir() if p.is_file() and p.suffix in YAML_SUFFIXES) if path.is_dir() else [path]
        )
        for p in found:
            if p.resolve() not in seen:
                seen.add(p.resolve())
                out.append(p)
    return out


def load_files(paths: Iterable[str | Path]) -> list[ReferenceRecord]:
    """Read, validate and cross-check the catalogue files (directories are expanded).

    Returns the records ordered field, unit, standard, mou, calendar (each in file order). Raises
    `CatalogError` listing every problem when anything is wrong, and then returns nothing.
    """
    files = catalog_files(paths)
    problems: list[Problem] = []
    entries: list[_Entry] = []
    if not files:
        raise CatalogError([Problem("-", 1, "no catalogue files given")])
    for path in files:
        entries.extend(_read_file(path, problems))
    problems.extend(_cross_check(entries))
    if problems:
        raise CatalogError(problems)
    records = [e.record for e in entries if e.record is not None]
    order = {kind: i for i, kind in enumerate(REFERENCE_KINDS)}
    return sorted(records, key=lambda r: order[r.kind])


# --- one file ------------------------------------------------------------------------------------


def _read_file(path: Path, problems: list[Problem]) -> list[_Entry]:
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(Problem(file, 1, "no such file or directory"))
        return []
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(file, 1, f"cannot read the file: {exc}"))
        return []

    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problems.append(Problem(file, line, f"not valid YAML: {exc.problem or exc.context}"))
        return []
    except yaml.YAMLError as exc:
        problems.append(Problem(file, 1, f"not valid YAML: {exc}"))
        return []
    finally:
        loader.dispose()

    if root is None:
        return []  # an empty file holds no records
    if not isinstance(root, yaml.SequenceNode) or not isinstance(data, list):
        problems.append(Problem(file, _mark_line(root), "a catalogue file is a YAML list of records"))
        return []

    implied = FILE_KINDS.get(path.stem)
    entries = []
    for item_node, item in zip(root.value, data, strict=True):
        if not isinstance(item_node, yaml.MappingNode) or not isinstance(item, dict):
            problems.append(Problem(file, _mark_line(item_node), "a record is a mapping of keys to values"))
            continue
        entry = _read_record(file, item_node, item, implied, problems)
        if entry is not None:
            entries.append(entry)
    return entries


def _read_record(
    file: str, node: yaml.MappingNode, item: dict[Any, Any], implied: str | None, problems: list[Problem]
) -> _Entry | None:
    problems.extend(Problem(file, line, reason) for line, reason in _duplicate_keys(node))
    stated = item.get("kind")
    if stated is not None and implied is not None and stated != implied:
        problems.append(Problem(file, _line(node, ["kind"]), f"kind {stated!r} in a file of {implied!r} records"))
        return None
    kind = stated if stated is not None else implied
    if kind is None:
        problems.append(Problem(file, _mark_line(node), f"no kind: say `kind:` ({', '.join(REFERENCE_KINDS)})"))
        return None
    if not isinstance(kind, str) or kind not in MODEL_BY_KIND:
        problems.append(Problem(file, _line(node, ["kind"]), f"unknown kind {kind!r} ({', '.join(REFERENCE_KINDS)})"))
        return None

    raw_code = item.get("code")
    code = str(raw_code) if isinstance(raw_code, str | int) and not isinstance(raw_code, bool) else None
    entry = _Entry(file=file, node=node, kind=kind, code=code)
    try:
        # Strict about unknown keys here (a typo must not vanish); readers of the topic are tolerant.
        model = MODEL_BY_KIND[kind].model_validate({**item, "kind": kind}, extra="forbid")
    except ValidationError as exc:
        label = f"{kind} {code}" if code else kind
        for err in exc.errors(include_url=False):
            problems.append(Problem(file, entry.line(*err["loc"]), f"{label}: {_describe(err)}"))
        # Only unknown keys wrong: still cross-check the rest, so one run reports everything.
        if all(err["type"] == "extra_forbidden" for err in exc.errors()):
            entry.record = cast(ReferenceRecord, MODEL_BY_KIND[kind].model_validate({**item, "kind": kind}))
        return entry
    entry.record = cast(ReferenceRecord, model)
    return entry


def _describe(err: Any) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "record"
    match err["type"]:
        case "missing":
            return f"{where}: required key missing"
        case "extra_forbidden":
            return f"{where}: unknown key (not in the contract)"
        case _:
            return f"{where}: {err['msg']} (got {err['input']!r})"


def _duplicate_keys(node: yaml.Node) -> Iterator[tuple[int, str]]:
    # PyYAML keeps the last of two equal keys silently; in a catalogue that is always a mistake.
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    yield _mark_line(key), f"key {key.value!r} given twice in one mapping"
                seen.add(key.value)
            yield from _duplicate_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for child in node.value:
            yield from _duplicate_keys(child)


def _mark_line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _line(node: yaml.Node, loc: Loc) -> int:
    """The line of the key or item `loc` points to inside `node`, or of the nearest enclosing one
    that exists (a missing key: the line of the mapping that lacks it)."""
    line = _mark_line(node)
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    line, node = _mark_line(key), value
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            line = _mark_line(node)
        else:
            return line
    return line


# --- across records ------------------------------------------------------------------------------


def _cross_check(entries: list[_Entry]) -> list[Problem]:
    problems: list[Problem] = []
    # Codes declared anywhere count as known even when their record is invalid: one broken
    # record should not also turn every reference to it into a problem.
    declared: dict[str, dict[str, _Entry]] = {kind: {} for kind in REFERENCE_KINDS}
    for e in entries:
        if e.code is None:
            continue
        first = declared[e.kind].get(e.code)
        if first is not None:
            problems.append(
                Problem(
                    e.file,
                    e.line("code"),
                    f"duplicate key {e.kind}:{e.code} (first defined at {first.file}:{first.line('code')})",
                )
            )
        else:
            declared[e.kind][e.code] = e
    fields = set(declared["field"])
    units = {c: e.record for c, e in declared["unit"].items() if isinstance(e.record, UnitRecord)}
    seen_measures: dict[str, tuple[_Entry, int]] = {}

    for e in entries:
        match e.record:
            case UnitRecord() as unit:
                problems.extend(_check_unit(e, unit, fields, set(declared["unit"]), units))
            case StandardRecord() as standard:
                problems.extend(_check_standard(e, standard, fields))
            case MouRecord() as mou:
                problems.extend(_check_mou(e, mou, fields, seen_measures))
            case CalendarRecord() as calendar:
                problems.extend(_check_calendar(e, calendar))
            case CampaignRecord() as campaign:
                problems.extend(_unknown_fields(e, campaign.fields, fields, "fields"))
                if not campaign.fields:
                    problems.append(Problem(e.file, e.line("fields"), f"campaign {campaign.code}: no field"))
            case FieldRecord() | None:
                pass
    problems.extend(_check_parent_cycles(declared["unit"], units))
    return problems


def _unknown_fields(e: _Entry, codes: list[str], fields: set[str], *loc: str | int) -> Iterator[Problem]:
    for i, code in enumerate(codes):
        if code not in fields:
            yield Problem(e.file, e.line(*loc, i), f"{e.kind} {e.code}: unknown field code {code!r}")


def _check_unit(
    e: _Entry, unit: UnitRecord, fields: set[str], declared_units: set[str], units: dict[str, UnitRecord]
) -> Iterator[Problem]:
    def problem(loc: str, reason: str) -> Problem:
        return Problem(e.file, e.line(loc), f"unit {unit.code}: {reason}")

    yield from _unknown_fields(e, unit.authorised_fields, fields, "authorised_fields")

    # Region: national units are "the whole country"; the others' codes match their level.
    region, level = unit.region, unit.level
    if level == "national" and region != NATIONAL_REGION:
        yield problem("region", f"a national unit has region {NATIONAL_REGION}, not {region}")
    elif level != "national" and region == NATIONAL_REGION:
        yield problem("region", f"region {NATIONAL_REGION} is for national units, not {level} ones")
    elif level == "provincial" and not region.endswith("0000"):
        yield problem("region", f"a provincial unit's region ends in 0000 (got {region})")
    elif level == "prefecture" and (region.endswith("0000") or not region.endswith("00")):
        yield problem("region", f"a prefecture unit's region ends in 00 but not 0000 (got {region})")
    elif level == "county" and region.endswith("00"):
        yield problem("region", f"a county unit's region does not end in 00 (got {region})")

    prefix, _, system = unit.code.partition("-")
    if prefix != region or not system or not system.isalnum() or not system.isupper():
        yield problem("code", f"a unit code is <region>-<SYSTEM>, e.g. {region}-SAMR (got {unit.code})")

    if unit.unit_kind == "association" and level != "national":
        yield problem("level", "only national industry associations are authorised (level national)")
    if unit.parent is None:
        if unit.unit_kind == "association":
            yield problem("unit_kind", "an association needs a parent: the state department that authorised it")
        elif level != "national":
            yield problem("parent", "a non-national unit needs a parent unit (where its overdue items escalate)")
    elif unit.parent == unit.code:
        yield problem("parent", "a unit cannot be its own parent")
    elif unit.parent not in declared_units:
        yield problem("parent", f"unknown parent unit {unit.parent!r}")
    elif (parent := units.get(unit.parent)) is not None:
        yield from _check_parent(problem, unit, parent)


def _check_parent(problem: Callable[[str, str], Problem], unit: UnitRecord, parent: UnitRecord) -> Iterator[Problem]:
    if unit.unit_kind == "association":
        if parent.unit_kind != "department" or parent.level != "national":
            yield problem("parent", f"an association's parent is a national department, not {parent.code}")
        extra = sorted(set(unit.authorised_fields) - set(parent.authorised_fields))
        if extra:
            yield problem("authorised_fields", f"fields {extra} are not among those of its authorising department")
        return
    if level_rank(parent.level) < level_rank(unit.level):
        yield problem("parent", f"parent {parent.code} ({parent.level}) is below the unit's level")
    digits = {"provincial": 2, "prefecture": 4, "county": 6}.get(parent.level)
    if digits is not None and parent.region[:digits] != unit.region[:digits]:
        yield problem("parent", f"parent {parent.code} is outside the unit's region {unit.region}")


def _check_parent_cycles(declared: dict[str, _Entry], units: dict[str, UnitRecord]) -> Iterator[Problem]:
    reported: set[str] = set()
    for code in units:
        path: list[str] = []
        current: str | None = code
        while current is not None and current in units and current not in path:
            path.append(current)
            current = units[current].parent
        if current is not None and current in path and current == code and code not in reported:
            reported.update(path)
            e = declared[code]
            yield Problem(e.file, e.line("parent"), f"unit {code}: parent cycle {' -> '.join([*path, code])}")


def _check_standard(e: _Entry, s: StandardRecord, fields: set[str]) -> Iterator[Problem]:
    def problem(loc: str, reason: str) -> Problem:
        return Problem(e.file, e.line(loc), f"standard {s.code}: {reason}")

    if s.field not in fields:
        yield problem("field", f"unknown field code {s.field!r}")
    if s.default_period_days > s.max_period_days:
        yield problem(
            "default_period_days",
            f"default_period_days {s.default_period_days} exceeds max_period_days {s.max_period_days}",
        )
    ceiling = MAX_PERIOD_DAYS.get(s.list)
    if ceiling is not None and s.max_period_days > ceiling:
        yield problem(
            "max_period_days",
            f"a {s.list} standard allows at most {ceiling} days (got max_period_days {s.max_period_days})",
        )
    if s.restorable and s.list == "red":
        yield problem("restorable", "credit restoration applies to black and key-scrutiny standards only")
    if s.restorable and s.min_days_before_restoration >= s.max_period_days:
        yield problem(
            "min_days_before_restoration",
            f"min_days_before_restoration {s.min_days_before_restoration} leaves no time for restoration "
            f"within max_period_days {s.max_period_days}",
        )
    if not s.restorable and s.min_days_before_restoration:
        yield problem("min_days_before_restoration", "set although restorable is false")


def _check_mou(
    e: _Entry, mou: MouRecord, fields: set[str], seen_measures: dict[str, tuple[_Entry, int]]
) -> Iterator[Problem]:
    yield from _unknown_fields(e, mou.fields, fields, "fields")
    if not mou.fields:
        yield Problem(e.file, e.line("fields"), f"mou {mou.code}: an MOU covers at least one field")
    if not mou.measures:
        yield Problem(e.file, e.line("measures"), f"mou {mou.code}: an MOU has at least one measure")
    for i, m in enumerate(mou.measures):
        yield from _unknown_fields(e, m.implementing_fields, fields, "measures", i, "implementing_fields")
        if not m.implementing_fields:
            yield Problem(
                e.file,
                e.line("measures", i, "implementing_fields"),
                f"mou {mou.code}: measure {m.code} has no implementing field",
            )
        if (m.measure_kind == "reward") != (m.list == "red"):
            yield Problem(
                e.file,
                e.line("measures", i, "list"),
                f"mou {mou.code}: measure {m.code}: rewards apply to the red list, punishments to the "
                f"black and key-scrutiny lists (got {m.measure_kind} on {m.list})",
            )
        first = seen_measures.get(m.code)
        if first is not None:
            where = f"{first[0].file}:{first[0].line('measures', first[1], 'code')}"
            yield Problem(
                e.file,
                e.line("measures", i, "code"),
                f"mou {mou.code}: duplicate measure code {m.code!r} (first defined at {where})",
            )
        else:
            seen_measures[m.code] = (e, i)


def _check_calendar(e: _Entry, c: CalendarRecord) -> Iterator[Problem]:
    def in_year(name: str, days: list[date]) -> Iterator[Problem]:
        for i, d in enumerate(days):
            if d.year != c.year:
                yield Problem(e.file, e.line(name, i), f"calendar {c.code}: {d} is not in {c.year}")

    yield from in_year("holidays", c.holidays)
    yield from in_year("working_weekend_days", c.working_weekend_days)
    holidays = set(c.holidays)
    for i, d in enumerate(c.working_weekend_days):
        if d.weekday() < 5:
            yield Problem(
                e.file,
                e.line("working_weekend_days", i),
                f"calendar {c.code}: {d} is a {d:%A}, not a weekend day",
            )
        if d in holidays:
            yield Problem(
                e.file,
                e.line("working_weekend_days", i),
                f"calendar {c.code}: {d} is both a holiday and a working day",
            )
