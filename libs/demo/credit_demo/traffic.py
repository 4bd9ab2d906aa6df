"""The demo's traffic: requests as many departments and the public portal send them, built from
the reference catalogue and the generator's own model of what it has designated so far.

Pure: no I/O and no clock of its own. `Traffic.next(now)` returns the next message to send at
`now`; the same seed, catalogue and sequence of times give the same messages (ids included), so
a test can check thousands of them and a run can be replayed.

The model follows what the platform will decide (designations it made, removals, open objections
and applications) closely enough that nearly every request is accepted; it need not be exact.
Operations on a designation wait `settle` after the request that made it, so that the services
have applied the designation before a request about it arrives on another topic.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from credit_common.contracts import types as ct
from credit_common.contracts.reference import Measure, StandardRecord, UnitRecord
from credit_common.reference.catalog import Catalog
from credit_common.reference.loader import MAX_PERIOD_DAYS

from credit_demo import campaigns, malformed, subjects, texts
from credit_demo.book import WARNING_FIELDS, Book, today_of
from credit_demo.model import RESTORABLE_LISTS, Entry, Message, Pair, Subject

DESIGNATE = ct.DESIGNATION_DESIGNATE
REMOVE = ct.DESIGNATION_REMOVE
AMEND = ct.DESIGNATION_AMEND
FILE_OBJECTION = ct.OBJECTION_FILE
DECIDE_OBJECTION = ct.OBJECTION_DECIDE
APPLY_RESTORATION = ct.RESTORATION_APPLY
DECIDE_RESTORATION = ct.RESTORATION_DECIDE
CONDUCT = ct.CONDUCT_REPORT
ENFORCEMENT = ct.ENFORCEMENT_REPORT

#: How often each operation is chosen. One that finds no target (nothing old enough to remove,
#: no objection to decide) falls back to a designation; `transfer` is a black designation that
#: moves a key-scrutiny entry after a serious conduct report.
DEFAULT_MIX: dict[str, float] = {
    DESIGNATE: 0.38,
    "transfer": 0.01,
    REMOVE: 0.03,
    AMEND: 0.04,
    FILE_OBJECTION: 0.05,
    DECIDE_OBJECTION: 0.045,
    APPLY_RESTORATION: 0.03,
    DECIDE_RESTORATION: 0.027,
    CONDUCT: 0.10,
    ENFORCEMENT: 0.24,
}
LISTS = {"black": 0.40, "key_scrutiny": 0.38, "red": 0.22}
SERIAL_SHARE = 0.01  # designations that put a repeat offender on a key-scrutiny list in one more key field
REUSE_SHARE = 0.4  # designations of a subject designated before


class Traffic(Book):
    """The request generator. `next(now)` gives one message; `sent` counts them by kind."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        seed: int,
        malformed: float = 0.005,
        settle: timedelta = timedelta(seconds=5),
        mix: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(catalog, random.Random(seed), settle)
        self.malformed = malformed
        mix = dict(mix or DEFAULT_MIX)
        self._ops = list(mix)
        self._weights = list(mix.values())
        self.sent: Counter[str] = Counter()
        self.fallbacks = 0  # operations that found no target and became a designation

    # --- the one public operation --------------------------------------------------------------

    def next(self, now: datetime) -> Message:
        """The next message to send at `now` (timezone-aware)."""
        if self.rng.random() < self.malformed:
            msg = self._malformed(now)
        else:
            op = self.rng.choices(self._ops, self._weights)[0]
            found = self._operation(op, now)
            if found is None:
                self.fallbacks += 1
                found = self._designate(now)
            msg = found
        self.sent[msg.kind] += 1
        return msg

    def _operation(self, op: str, now: datetime) -> Message | None:
        match op:
            case ct.DESIGNATION_DESIGNATE:
                return self._designate(now)
            case "transfer":
                return self._transfer(now)
            case ct.DESIGNATION_REMOVE:
                return self._remove(now)
            case ct.DESIGNATION_AMEND:
                return self._amend(now)
            case ct.OBJECTION_FILE:
                return self._file_objection(now)
            case ct.OBJECTION_DECIDE:
                return self._decide_objection(now)
            case ct.RESTORATION_APPLY:
                return self._apply_restoration(now)
            case ct.RESTORATION_DECIDE:
                return self._decide_restoration(now)
            case ct.CONDUCT_REPORT:
                return self._conduct(now)
            case ct.ENFORCEMENT_REPORT:
                return self._enforcement(now)
        raise ValueError(f"unknown operation {op!r}")

    # --- designations --------------------------------------------------------------------------

    def _designate(self, now: datetime) -> Message:
        rng = self.rng
        if rng.random() < SERIAL_SHARE and self._serial_fields:
            return self._serial(now)
        list_ = rng.choices(list(LISTS), list(LISTS.values()))[0]
        if self._subjects and rng.random() < REUSE_SHARE:
            subject = rng.choice(self._subjects)
            pair = self._pair_for(subject, list_)
            if pair is not None:
                return self._designation(now, subject, *pair)
        kind = rng.choices(("legal_person", "natural_person", "other_org"), (0.72, 0.22, 0.06))[0]
        unit, std = rng.choice(self._pairs[(kind, list_)])
        return self._designation(now, self._new_subject(kind, std.field, unit), unit, std)

    def _pair_for(self, subject: Subject, list_: str) -> Pair | None:
        """A unit and standard that may designate this subject now, or None."""
        if not subject.reusable or (list_ == "red" and subject.on_black_or_key_scrutiny()):
            return None
        candidates = self._pairs.get((str(subject.data["kind"]), list_), [])
        for _ in range(4):
            unit, std = self.rng.choice(candidates)
            if std.code not in subject.entries:
                return unit, std
        return None

    def _serial(self, now: datetime) -> Message:
        """A repeat offender onto the key-scrutiny list of one more key field: a few subjects reach
        three key fields (some four) and so the Big Data Warning List."""
        rng = self.rng
        target = next((s for s in self._serials if len(s.key_scrutiny_fields(self.key_fields)) < s.serial_target), None)
        if target is None:
            unit, std = rng.choice(self._pairs_of[(rng.choice(self._serial_fields), "key_scrutiny")])
            target = self._new_subject("legal_person", std.field, unit)
            target.serial_target = WARNING_FIELDS + (1 if rng.random() < 0.25 else 0)
            self._serials = [*self._serials[-49:], target]
        have = target.key_scrutiny_fields(self.key_fields)
        fields = [f for f in self._serial_fields if f not in have and f"{f}-key_scrutiny" not in target.entries]
        if not fields:
            target.serial_target = 0
            return self._designate(now)
        unit, std = rng.choice(self._pairs_of[(rng.choice(fields), "key_scrutiny")])
        return self._designation(now, target, unit, std)

    def _designation(
        self, now: datetime, subject: Subject, unit: UnitRecord, std: StandardRecord, transfer_from: Entry | None = None
    ) -> Message:
        rng, today = self.rng, today_of(now)
        # Most decisions are days old; some are a department's backlog, old enough to be restored.
        back = rng.randint(0, 14) if rng.random() < 0.65 else rng.randint(0, max(0, std.default_period_days - 30))
        if transfer_from is not None:
            back = rng.randint(0, 3)
        decided_on = today - timedelta(days=back)
        effective_to = decided_on + timedelta(days=std.default_period_days - 1)
        data: dict[str, Any] = {
            "list": std.list,
            "standard": std.code,
            "subject": dict(subject.data),
            "decision": {
                "document_no": self._document_no(unit, "罚" if std.list != "red" else "认", today),
                "decided_on": decided_on.isoformat(),
                "facts": self._facts(std),
            },
        }
        if rng.random() < 0.5:
            data["decision"]["legal_basis"] = std.legal_basis
        limit = min(std.max_period_days, MAX_PERIOD_DAYS.get(std.list, std.max_period_days))
        shortest = max(back + 30, 90)
        if rng.random() < 0.2 and shortest <= limit:
            effective_to = decided_on + timedelta(days=rng.randint(shortest, limit) - 1)
            data["effective_from"] = decided_on.isoformat()
            data["effective_to"] = effective_to.isoformat()
        if campaign := campaigns.campaign_for(self.catalog, rng, std.field, unit.region, decided_on):
            data["campaign"] = campaign
        if transfer_from is not None:
            data["transfer_from"] = transfer_from.designation_id
        elif subject.reusable and not subject.entries and subject.data["scheme"] == "uscc" and rng.random() < 0.003:
            # Real codes whose check character fails exist; the unit confirms it explicitly.
            subject.data["id"] = subjects.wrong_check(subject.id)
            subject.reusable = False
            data["subject"] = dict(subject.data)
            data["checksum_override"] = {"reason": "Code as printed on the business licence; confirmed with SAMR."}
        msg = self._event(DESIGNATE, f"unit/{unit.code}", subject.id, data, now)
        entry = Entry(msg.id, subject, std, unit, decided_on, effective_to, now)
        if transfer_from is not None:
            self._retire(transfer_from)
        if std.list in RESTORABLE_LISTS:
            for red in [e for e in subject.entries.values() if e.list == "red"]:
                self._retire(red)  # superseded
        subject.entries[std.code] = entry
        self._active.add(entry.designation_id, entry)
        if std.list == "key_scrutiny":
            self._key_scrutiny.add(entry.designation_id, entry)
        if std.list in RESTORABLE_LISTS and std.restorable:
            self._restorable.add(entry.designation_id, entry)
        return msg

    def _transfer(self, now: datetime) -> Message | None:
        """After a serious conduct report: the key-scrutiny entry moved to the black list."""
        while self._transfers and self._transfers[0][1] <= now - self.settle:
            entry, _ = self._transfers.popleft()
            black = self._pairs_of.get((entry.field, "black"))
            if not self._usable(entry, now) or entry.busy or not black:
                continue
            # Only the designating unit, or its parent, transfers its entry.
            own = [p for p in black if p[0].code == entry.unit.code] or [
                p for p in black if p[0].code == entry.unit.parent
            ]
            unit, std = self.rng.choice(own) if own else (None, None)
            if std is None or unit is None or std.code in entry.subject.entries:
                continue
            return self._designation(now, entry.subject, unit, std, transfer_from=entry)
        return None

    def _remove(self, now: datetime) -> Message | None:
        entry = self._target(now)
        if entry is None:
            return None
        data = {
            "designation_id": entry.designation_id,
            "reason": "revoked",
            "decision": {
                "document_no": self._document_no(entry.unit, "撤", today_of(now)),
                "decided_on": today_of(now).isoformat(),
                "facts": "The decision is revoked after review: the grounds no longer hold.",
            },
        }
        self._retire(entry)
        return self._event(REMOVE, f"unit/{entry.unit.code}", entry.subject.id, data, now)

    def _amend(self, now: datetime) -> Message | None:
        entry = self._target(now)
        if entry is None:
            return None
        today = today_of(now)
        changes: dict[str, Any]
        if self.rng.random() < 0.4 and (entry.effective_to - today).days > 31:
            new_to = today + timedelta(days=self.rng.randint(30, (entry.effective_to - today).days - 1))
            changes = {"effective_to": new_to.isoformat()}
            entry.effective_to = new_to
            reason = "Period shortened after review."
        else:
            changes = {"facts": texts.fill(self.rng, self.rng.choice(texts.AMEND_FACTS))}
            reason = self.rng.choice(texts.AMEND_REASONS[:2])
        data = {"designation_id": entry.designation_id, "changes": changes, "reason": reason}
        return self._event(AMEND, f"unit/{entry.unit.code}", entry.subject.id, data, now)

    # --- objections and restoration ------------------------------------------------------------

    def _file_objection(self, now: datetime) -> Message | None:
        by_subject = self.rng.random() < 0.7
        # Subjects object to punishing entries; an enforcing unit may doubt any entry.
        entry = self._pick(self._active, now, lambda e: not e.busy and (e.list != "red" or not by_subject))
        if entry is None:
            return None
        rng, subject = self.rng, entry.subject
        objector: dict[str, Any]
        if by_subject:
            source, grounds = "portal", rng.choice(texts.OBJECTION_GROUNDS)
            objector = {"kind": "subject", "id": subject.id, "name": subject.data["name"]}
            if rng.random() < 0.5:
                objector["contact"] = f"+86 1{rng.randint(30, 99)}{rng.randrange(10**8):08d}"
        else:
            enforcing = [u for _, us in self._measures.get((entry.list, entry.field), []) for u in us]
            unit = rng.choice([u for u in enforcing or self._units if u.code != entry.unit.code] or self._units)
            source, grounds = f"unit/{unit.code}", rng.choice(texts.UNIT_GROUNDS)
            objector = {"kind": "unit", "id": unit.code, "name": unit.name}
        data = {
            "designation_id": entry.designation_id,
            "objector": objector,
            "grounds": grounds,
            "evidence": [f"EV-{today_of(now):%Y}-{rng.randrange(10**6):06d}" for _ in range(rng.randint(1, 3))],
        }
        msg = self._event(FILE_OBJECTION, source, subject.id, data, now)
        entry.objection = msg.id
        self._objections.append((msg.id, entry, now))
        return msg

    def _decide_objection(self, now: datetime) -> Message | None:
        while self._objections and self._objections[0][1].objection != self._objections[0][0]:
            self._objections.popleft()  # closed: its entry left the list meanwhile
        if not self._objections or self._objections[0][2] > now - self.settle:
            return None
        objection_id, entry, _ = self._objections.popleft()
        outcome = self.rng.choices(("upheld", "partially_upheld", "rejected"), (0.25, 0.2, 0.55))[0]
        data = {
            "objection_id": objection_id,
            "outcome": outcome,
            "reasoning": texts.OBJECTION_REASONING[outcome],
            "decided_on": today_of(now).isoformat(),
        }
        entry.objection = None
        if outcome == "upheld":
            self._retire(entry)
        return self._event(DECIDE_OBJECTION, f"unit/{entry.unit.code}", entry.subject.id, data, now)

    def _apply_restoration(self, now: datetime) -> Message | None:
        today = today_of(now)

        def restorable(e: Entry) -> bool:
            earliest = e.effective_from + timedelta(days=e.standard.min_days_before_restoration)
            return not e.busy and earliest <= today

        entry = self._pick(self._restorable, now, restorable)
        if entry is None:
            return None
        rng, subject = self.rng, entry.subject
        kinds = ["obligation_performed", *rng.sample(sorted(texts.RESTORATION_MEASURES)[1:], rng.randint(0, 2))]
        measures = []
        for kind in dict.fromkeys(kinds):
            measure: dict[str, Any] = {
                "kind": kind,
                "detail": rng.choice(texts.RESTORATION_MEASURES[kind]),
                "completed_on": (today - timedelta(days=rng.randint(1, 60))).isoformat(),
            }
            if kind in ("restoration_training", "volunteer_service", "public_interest_service"):
                measure["hours"] = rng.choice((4, 6, 8, 16, 24, 40))
            measures.append(measure)
        applicant: dict[str, Any] = {"id": subject.id, "name": subject.data["name"]}
        if rng.random() < 0.6:
            applicant["contact"] = f"+86 1{rng.randint(30, 99)}{rng.randrange(10**8):08d}"
        data = {
            "designation_id": entry.designation_id,
            "applicant": applicant,
            "measures": measures,
            "evidence": [f"RC-{today:%Y}-{rng.randrange(10**6):06d}"],
        }
        msg = self._event(APPLY_RESTORATION, "portal", subject.id, data, now)
        entry.application = msg.id
        self._applications.append((msg.id, entry, now))
        return msg

    def _decide_restoration(self, now: datetime) -> Message | None:
        while self._applications and self._applications[0][1].application != self._applications[0][0]:
            self._applications.popleft()  # closed: its entry left the list meanwhile
        if not self._applications or self._applications[0][2] > now - self.settle:
            return None
        application_id, entry, _ = self._applications.popleft()
        outcome = "approved" if self.rng.random() < 0.7 else "rejected"
        data = {
            "application_id": application_id,
            "outcome": outcome,
            "reasoning": texts.RESTORATION_REASONING[outcome],
            "decided_on": today_of(now).isoformat(),
        }
        entry.application = None
        if outcome == "approved":
            self._retire(entry)
        return self._event(DECIDE_RESTORATION, f"unit/{entry.unit.code}", entry.subject.id, data, now)

    # --- conduct reports and enforcement cases -------------------------------------------------

    def _conduct(self, now: datetime) -> Message | None:
        rng, today = self.rng, today_of(now)
        entry = None
        if rng.random() < 0.75:
            for _ in range(4):
                found = self._key_scrutiny.choice(rng)
                if found is not None and self._usable(found, now) and found.subject.reusable:
                    entry = found
                    break
        if entry is not None:
            subject, field_ = entry.subject, entry.field
            serious = rng.random() < 0.35
        else:
            reusable = [s for s in (rng.choice(self._subjects) for _ in range(3) if self._subjects) if s.reusable]
            if not reusable:
                return None
            subject, field_, serious = reusable[0], rng.choice(sorted(self._reporters)), rng.random() < 0.05
        reporters = self._reporters.get(field_)
        if not reporters:
            return None
        unit = rng.choice(reporters)
        occurred_on = today - timedelta(days=rng.randint(1, 60))  # in the entry's period, if any:
        occurred_on = max(occurred_on, entry.effective_from) if entry is not None else occurred_on
        data = {
            "subject": dict(subject.data),
            "field": field_,
            "serious": serious,
            "occurred_on": occurred_on.isoformat(),
            "document_no": self._document_no(unit, "检", today),
            "description": rng.choice(texts.SERIOUS_CONDUCT if serious else texts.CONDUCT),
        }
        if serious and entry is not None and rng.random() < 0.5:
            self._transfers.append((entry, now))
        return self._event(CONDUCT, f"unit/{unit.code}", subject.id, data, now)

    def _enforcement(self, now: datetime) -> Message | None:
        rng, today = self.rng, today_of(now)

        def applicable(e: Entry) -> list[tuple[Measure, list[UnitRecord]]]:
            # No punishment while an objection is open on the entry (design.md 4).
            found = self._measures.get((e.list, e.field), [])
            return [(m, us) for m, us in found if not (e.objection and m.measure_kind == "punishment")]

        entry = self._pick(self._active, now, lambda e: bool(applicable(e)))
        if entry is None:
            return None
        measure, implementing = rng.choice(applicable(entry))
        unit = rng.choice(implementing)
        applied_on = max(entry.effective_from, today - timedelta(days=rng.randint(0, 30)))
        case_id = self._uuid7(now)
        typical = rng.random() < 0.08
        media = []
        if typical or rng.random() < 0.1:
            for _ in range(rng.randint(1, 3 if typical else 1)):
                published = min(today, applied_on + timedelta(days=rng.randint(0, 7)))
                media.append(texts.media_report(rng, unit.region[:2] + "0000", case_id, published))
        data = {
            "designation_id": entry.designation_id,
            "measure": measure.code,
            "applied_on": applied_on.isoformat(),
            "outcome": rng.choice(texts.OUTCOMES[measure.measure_kind]),
            "description": f"{measure.description} Applied to {entry.subject.data['name']}.",
            "typical": typical,
            "media": media,
        }
        if campaign := campaigns.campaign_for(self.catalog, rng, entry.field, unit.region, applied_on):
            data["campaign"] = campaign
        return self._event(ENFORCEMENT, f"unit/{unit.code}", entry.subject.id, data, now, id=case_id)

    # --- malformed messages --------------------------------------------------------------------

    def _malformed(self, now: datetime) -> Message:
        return malformed.message(self.rng, self._units, now, self._uuid7)
