"""The platform's rules applied to the demo's requests in order, without I/O: each request goes
through the services' own domain functions (designation, objection, warning, cases) over state
kept here, as the services would keep it, and its answer (accepted, or the rejection's codes) is
recorded. It shows whether the generator's traffic is the kind the platform accepts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from credit_common.calendar import WorkingDayCalendar
from credit_common.clock import SHANGHAI
from credit_common.contracts.envelope import CloudEvent
from credit_common.contracts.events import DesignationRecord
from credit_common.contracts.registry import parse_data
from credit_common.contracts.requests import (
    AmendDesignation,
    ApplyRestoration,
    DecideObjection,
    DecideRestoration,
    Designate,
    FileObjection,
    RemoveDesignation,
    ReportConduct,
    ReportEnforcement,
)
from credit_common.outcomes import ErrorItem, Rejected
from credit_common.reference.catalog import Catalog

from services.cases import domain as cases
from services.designation import domain as designation
from services.objection import domain as objection
from services.warning import domain as warning


@dataclass
class Item:
    """An objection or restoration application as the objection service keeps it."""

    designation_id: str
    unit: str
    objector_key: str | None = None
    status: str = "open"


@dataclass
class Platform:
    catalog: Catalog
    records: dict[str, DesignationRecord] = field(default_factory=dict)
    objections: dict[str, Item] = field(default_factory=dict)
    applications: dict[str, Item] = field(default_factory=dict)
    accepted: Counter[str] = field(default_factory=Counter)
    rejected: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, code)

    def __post_init__(self) -> None:
        self.calendar = WorkingDayCalendar(self.catalog.calendars())
        self._by_subject: dict[str, set[str]] = {}
        self._handlers: dict[str, Callable[[CloudEvent, Any, datetime, date], None]] = {
            "credit.designation.designate": self._designate,
            "credit.designation.remove": self._remove,
            "credit.designation.amend": self._amend,
            "credit.objection.file": self._file,
            "credit.objection.decide": self._decide_objection,
            "credit.restoration.apply": self._apply,
            "credit.restoration.decide": self._decide_restoration,
            "credit.conduct.report": self._conduct,
            "credit.enforcement.report": self._enforcement,
        }

    def handle(self, event: CloudEvent) -> None:
        """Apply one request: accepted, or rejected with the codes the services would answer."""
        at = event.time
        today = at.astimezone(SHANGHAI).date()
        try:
            self._handlers[event.type](event, parse_data(event), at, today)
        except Rejected as exc:
            for error in exc.errors:
                self.rejected[(event.type, error.code)] += 1
        else:
            self.accepted[event.type] += 1

    # --- designation ----------------------------------------------------------------------------

    def _put(self, record: DesignationRecord) -> None:
        self.records[record.designation_id] = record
        self._by_subject.setdefault(record.subject.id, set()).add(record.designation_id)
        if record.status != "active":  # the objection service closes what still waits on the entry
            for item in [*self.objections.values(), *self.applications.values()]:
                if item.designation_id == record.designation_id and item.status == "open":
                    item.status = "closed"

    def active_of(self, subject_id: str) -> list[DesignationRecord]:
        found = (self.records[i] for i in self._by_subject.get(subject_id, ()))
        return [r for r in found if r.status == "active"]

    def _designate(self, event: CloudEvent, req: Designate, at: datetime, today: date) -> None:
        done = designation.designate(
            req,
            designation_id=event.id,
            unit_code=event.source_unit,
            catalog=self.catalog,
            today=today,
            at=at,
            active_of_subject=self.active_of,
            lookup=self.records.get,
        )
        for removal in done.removals:
            self._put(removal.record)
        self._put(done.record)

    def _remove(self, event: CloudEvent, req: RemoveDesignation, at: datetime, today: date) -> None:
        self._put(
            designation.revoke(
                req, unit_code=event.source_unit, catalog=self.catalog, at=at, lookup=self.records.get
            ).record
        )

    def _amend(self, event: CloudEvent, req: AmendDesignation, at: datetime, today: date) -> None:
        amended = designation.amend(
            req, unit_code=event.source_unit, catalog=self.catalog, lookup=self.records.get, today=today
        )
        self._put(amended.record)

    def _removed_by(self, designation_id: str, reason: str, at: datetime, related: str) -> None:
        removal = designation.remove_for(self.records.get(designation_id), reason, at, related)
        if removal is not None:
            self._put(removal.record)

    # --- objection ------------------------------------------------------------------------------

    def _entry(self, designation_id: str) -> objection.Entry | None:
        record = self.records.get(designation_id)
        return None if record is None else objection.Entry.of(record.model_dump(mode="json"))

    def _file(self, event: CloudEvent, req: FileObjection, at: datetime, today: date) -> None:
        def has_open(key: str) -> bool:
            return any(
                o.designation_id == req.designation_id and o.objector_key == key and o.status == "open"
                for o in self.objections.values()
            )

        filing = objection.file_objection(
            req,
            entry=self._entry(req.designation_id),
            catalog=self.catalog,
            has_open=has_open,
            filed_day=today,
            calendar=self.calendar,
        )
        unit = self.records[req.designation_id].unit
        self.objections[event.id] = Item(req.designation_id, unit, filing.objector_key)

    def _decided(self, items: dict[str, Item], item_id: str, decider: str | None, unknown: str, what: str) -> Item:
        item = items.get(item_id)
        objection.check_decider(
            objection.Pending(item_id, item.unit, item.status, None) if item else None,
            item_id=item_id,
            decider=decider,
            unknown_code=unknown,
            id_field=f"{what}_id",
            what=what,
        )
        assert item is not None
        return item

    def _decide_objection(self, event: CloudEvent, req: DecideObjection, at: datetime, today: date) -> None:
        item = self._decided(self.objections, req.objection_id, event.source_unit, "unknown_objection", "objection")
        item.status = "resolved"
        if req.outcome == "upheld":
            self._removed_by(item.designation_id, "objection_upheld", at, req.objection_id)

    def _apply(self, event: CloudEvent, req: ApplyRestoration, at: datetime, today: date) -> None:
        entry = self._entry(req.designation_id)
        objection.apply_restoration(
            req,
            entry=entry,
            standard=self.catalog.standard(entry.standard) if entry else None,
            applied_on=today,
            calendar=self.calendar,
        )
        assert entry is not None
        self.applications[event.id] = Item(req.designation_id, entry.unit)

    def _decide_restoration(self, event: CloudEvent, req: DecideRestoration, at: datetime, today: date) -> None:
        item = self._decided(
            self.applications, req.application_id, event.source_unit, "unknown_application", "application"
        )
        if req.outcome == "approved":
            entry = self._entry(item.designation_id)
            objection.check_approval(entry, self.catalog.standard(entry.standard) if entry else None, req.decided_on)
            record = self.records[item.designation_id]
            why_not = designation.restoration_allowed(record, self.catalog.standard(record.standard), req.decided_on)
            if why_not is not None:
                raise Rejected([ErrorItem("restoration_not_allowed", "outcome", why_not)])
            self._removed_by(item.designation_id, "restored", at, req.application_id)
        item.status = "resolved"

    # --- warning and cases ----------------------------------------------------------------------

    def _conduct(self, event: CloudEvent, req: ReportConduct, at: datetime, today: date) -> None:
        warning.validate_report(req, unit_code=event.source_unit, catalog=self.catalog)

    def _enforcement(self, event: CloudEvent, req: ReportEnforcement, at: datetime, today: date) -> None:
        record = self.records.get(req.designation_id)
        entry = None if record is None else cases.Entry.of(record.model_dump(mode="json"), at)
        open_objection = any(
            o.designation_id == req.designation_id and o.status == "open" for o in self.objections.values()
        )
        cases.check_report(
            req,
            unit_code=event.source_unit,
            entry=entry,
            catalog=self.catalog,
            objection_open=open_objection,
            reported_on=today,
        )

    # --- what the lists hold --------------------------------------------------------------------

    def warning_list(self) -> set[str]:
        """Subjects with active key-scrutiny entries in three or more key fields."""
        key_fields = self.catalog.key_fields()
        fields: dict[str, set[str]] = {}
        for r in self.records.values():
            if r.status == "active" and r.list == "key_scrutiny" and r.field in key_fields:
                fields.setdefault(r.subject.id, set()).add(r.field)
        return {s for s, f in fields.items() if len(f) >= 3}
