"""The one public-view function, property-tested: over generated identity numbers, names, kinds
and decisions, a natural person's number never survives it, facts never do, entries of non-public
standards never pass, and legal persons' codes and names stay as they are."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson
from credit_common.contracts.events import ListChange
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import ric

from services.sharing import domain

NAME_ALPHABET = st.characters(categories=("L", "Zs"), exclude_characters="\x00")
names = st.text(NAME_ALPHABET, min_size=1, max_size=40).filter(lambda s: s.strip() != "")


@st.composite
def resident_ids(draw: st.DrawFn) -> str:
    region = draw(st.sampled_from(["110101", "310115", "440106", "510104", "330106", "650102"]))
    born = draw(st.dates(min_value=date(1920, 1, 1), max_value=date(2010, 12, 31)))
    body = region + born.strftime("%Y%m%d") + f"{draw(st.integers(0, 999)):03d}"
    return body + ric.calc_check_digit(body + "0")


@st.composite
def subjects(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        return {"kind": "natural_person", "scheme": "resident_id", "id": draw(resident_ids()), "name": draw(names)}
    passport = draw(st.booleans())
    if passport:  # a natural person identified by a passport is still a natural person
        number = draw(st.from_regex(r"\A[A-Z][0-9]{8}\Z"))
        return {"kind": "natural_person", "scheme": "other", "id": number, "name": draw(names)}
    uscc = "91110000" + draw(st.from_regex(r"\A[0-9A-HJ-NP-RTUWXY]{10}\Z"))
    subject = {"kind": "legal_person", "scheme": "uscc", "id": uscc, "name": draw(names)}
    if draw(st.booleans()):
        subject["legal_representative"] = draw(names)
    return subject


@st.composite
def entries(draw: st.DrawFn) -> tuple[dict[str, Any], bool]:
    subject = draw(subjects())
    facts = f"{subject['name']} ({subject['id']}): " + draw(st.text(min_size=1, max_size=60))
    record = {
        "designation_id": "0193d1c2-7a51-7c3e-9f0a-3b1d2e4f5a6b",
        "list": draw(st.sampled_from(["red", "black", "key_scrutiny"])),
        "field": "taxation",
        "standard": "taxation-black",
        "unit": "100000-SAT",
        "region": "100000",
        "subject": subject,
        "decision": {"document_no": "D-1", "decided_on": "2026-03-01", "facts": facts},
        "effective_from": "2026-03-01",
        "effective_to": "2027-02-28",
    }
    return domain.designation_entry(record, draw(st.booleans())), draw(st.booleans())


@settings(max_examples=500, deadline=None)
@given(entries())
def test_public_view_masks_natural_persons_and_drops_facts(case: tuple[dict[str, Any], bool]) -> None:
    entry, public = case
    view = domain.public_view(entry, public=public)
    if not public:
        assert view is None
        return
    assert view is not None
    raw = entry["subject"]["id"]
    natural = entry["subject"]["kind"] == "natural_person"
    text = orjson.dumps(view).decode()
    assert "facts" not in view["decision"]
    assert view["subject"]["name"] == entry["subject"]["name"]  # names are public
    if natural:
        assert raw not in text
        masked = raw[:6] + "*" * (len(raw) - 10) + raw[-4:] if len(raw) > 10 else "*" * len(raw)
        assert view["subject"]["id"] == masked
        assert domain.public_key(raw, entry["subject"]) == masked
    else:
        assert view["subject"] == entry["subject"]
        assert domain.public_key(raw, entry["subject"]) == raw
    assert entry["decision"]["facts"]  # the input is left as it was
    assert {k: v for k, v in view.items() if k not in ("subject", "decision")} == {
        k: v for k, v in entry.items() if k not in ("subject", "decision")
    }


@settings(max_examples=200, deadline=None)
@given(entries())
def test_public_change_documents_match_the_contract(case: tuple[dict[str, Any], bool]) -> None:
    entry, public = case
    version = domain.Version(
        entry_id=entry["entry_id"],
        list="black",
        subject_id=entry["subject"]["id"],
        status=domain.ACTIVE,
        reason=None,
        public=public,
        entry=entry,
        record={},
        valid_from=datetime(2026, 2, 28, 16, tzinfo=UTC),
        valid_to=None,
        recorded_at=datetime(2026, 3, 1, 1, tzinfo=UTC),
        cause="e",
    )
    change = domain.Change(domain.ENTRY_ADDED, version, None, None)
    doc = change.public_data(5)
    if not public:
        assert doc is None
        return
    assert doc is not None
    parsed = ListChange.model_validate(doc)
    assert parsed.entry.decision is not None
    assert parsed.entry.decision.facts is None
    if entry["subject"]["kind"] == "natural_person":
        assert entry["subject"]["id"] not in orjson.dumps(doc).decode()
