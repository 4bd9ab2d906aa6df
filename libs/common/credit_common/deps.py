"""What a service's handlers use of their running service, as protocols: the service's name, the
reference catalogue with its working-day calendar, the metrics. A running service gives its
`Runtime`; a handler test or the demo gives `StaticDeps` over a catalogue in memory."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from prometheus_client import CollectorRegistry

from credit_common.calendar import WorkingDayCalendar
from credit_common.messaging.apply import ConsumerObserver
from credit_common.reference.catalog import Catalog


class ReferenceView(Protocol):
    """The reference data as the handlers read it (the process's cache of `credit.reference.v1`)."""

    @property
    def catalog(self) -> Catalog: ...
    @property
    def calendar(self) -> WorkingDayCalendar: ...


class HandlerDeps(Protocol):
    """What handlers use of their service besides the batch's unit of work and their store."""

    @property
    def name(self) -> str: ...
    @property
    def reference(self) -> ReferenceView: ...
    @property
    def observer(self) -> ConsumerObserver: ...
    @property
    def registry(self) -> CollectorRegistry: ...


@dataclass
class StaticReference:
    """A catalogue held in memory (tests, the demo)."""

    catalog: Catalog

    @cached_property
    def calendar(self) -> WorkingDayCalendar:
        return WorkingDayCalendar(self.catalog.calendars())


@dataclass
class StaticDeps:
    """`HandlerDeps` without a running service: a name, a catalogue, metrics nobody scrapes."""

    name: str
    reference: StaticReference
    observer: ConsumerObserver = field(default_factory=ConsumerObserver)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    @classmethod
    def of(cls, name: str, catalog: Catalog) -> StaticDeps:
        return cls(name, StaticReference(catalog))
