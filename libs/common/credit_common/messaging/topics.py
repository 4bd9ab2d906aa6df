"""The contract's topics (contracts.md, Topics) and their creation at start."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from credit_common.messaging.connection import kafka_options

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
#: The largest record batch a topic takes (the broker's own default, made explicit).
MAX_RECORD_BYTES = 1024 * 1024


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 12
    compact: bool = False
    retention_days: int | None = None  # None: never expires

    def configs(self, replication_factor: int = 1) -> dict[str, str]:
        """The topic's configuration, every size and durability setting explicit rather than the
        broker's default: records up to `MAX_RECORD_BYTES` (over the 512 KiB a message may carry,
        so an oversize request reaches a consumer and is answered `too_large`), and with
        replicas, two in sync for every write (`acks=all`)."""
        common = {
            "max.message.bytes": str(MAX_RECORD_BYTES),
            "min.insync.replicas": "2" if replication_factor > 1 else "1",
        }
        if self.compact:
            return {**common, "cleanup.policy": "compact", "min.compaction.lag.ms": "0"}
        retention = -1 if self.retention_days is None else self.retention_days * DAY_MS
        return {**common, "cleanup.policy": "delete", "retention.ms": str(retention)}


REFERENCE = "credit.reference.v1"
DESIGNATION_REQUESTS = "credit.designation.requests.v1"
DESIGNATION_EVENTS = "credit.designation.events.v1"
OBJECTION_REQUESTS = "credit.objection.requests.v1"
OBJECTION_EVENTS = "credit.objection.events.v1"
CONDUCT_REPORTS = "credit.conduct.reports.v1"
WARNING_EVENTS = "credit.warning.events.v1"
ENFORCEMENT_ACTIONS = "credit.enforcement.actions.v1"
CASES_EVENTS = "credit.cases.events.v1"
LISTS_CHANGES = "credit.lists.changes.v1"
LISTS_PUBLIC = "credit.lists.public.v1"
UNIT_INBOX = "credit.unit.inbox.v1"
SUBJECT_NOTICES = "credit.subject.notices.v1"
FEEDBACK = "credit.feedback.v1"
DEADLETTER = "credit.deadletter.v1"

#: What each topic's record key is (contracts.md, Topics).
KEYS: dict[str, str] = {
    REFERENCE: "<kind>:<code> of the record",
    DESIGNATION_REQUESTS: "the subject's id",
    DESIGNATION_EVENTS: "the subject's id",
    OBJECTION_REQUESTS: "the subject's id",
    OBJECTION_EVENTS: "the subject's id",
    CONDUCT_REPORTS: "the subject's id",
    WARNING_EVENTS: "the subject's id",
    ENFORCEMENT_ACTIONS: "the subject's id",
    CASES_EVENTS: "the subject's id",
    LISTS_CHANGES: "the subject's id",
    LISTS_PUBLIC: "the subject's id (a natural person's masked)",
    UNIT_INBOX: "the code of the unit that must act",
    SUBJECT_NOTICES: "the subject's id",
    FEEDBACK: "the code of the unit of the request's source",
    DEADLETTER: "the original record's key",
}

#: The topics departments and the portal write: every message on them is a signed request.
REQUEST_TOPICS = frozenset({DESIGNATION_REQUESTS, OBJECTION_REQUESTS, CONDUCT_REPORTS, ENFORCEMENT_ACTIONS})

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(REFERENCE, partitions=1, compact=True),
    TopicSpec(DESIGNATION_REQUESTS, retention_days=30),
    TopicSpec(DESIGNATION_EVENTS),
    TopicSpec(OBJECTION_REQUESTS, retention_days=30),
    TopicSpec(OBJECTION_EVENTS),
    TopicSpec(CONDUCT_REPORTS, retention_days=30),
    TopicSpec(WARNING_EVENTS),
    TopicSpec(ENFORCEMENT_ACTIONS, retention_days=30),
    TopicSpec(CASES_EVENTS),
    TopicSpec(LISTS_CHANGES),
    TopicSpec(LISTS_PUBLIC),
    TopicSpec(UNIT_INBOX, retention_days=90),
    TopicSpec(SUBJECT_NOTICES, retention_days=365),
    TopicSpec(FEEDBACK, retention_days=30),
    TopicSpec(DEADLETTER, retention_days=90),
)


@dataclass
class TopicReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


async def ensure_topics(
    bootstrap: str,
    specs: tuple[TopicSpec, ...] | list[TopicSpec] = TOPICS,
    *,
    replication_factor: int = 1,
    default_partitions: int | None = None,
) -> TopicReport:
    """Create each topic of `specs` that is missing; existing topics are left as they are (a
    partition count that differs from the contract is reported, never changed: re-partitioning a
    keyed topic would break per-subject ordering)."""
    report = TopicReport()
    admin = AIOKafkaAdminClient(**kafka_options(bootstrap), client_id="credit-topics")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = []
        for spec in specs:
            partitions = spec.partitions
            if default_partitions is not None and spec.partitions != 1:
                partitions = default_partitions
            if spec.name in existing:
                report.existing.append(spec.name)
                continue
            missing.append(
                NewTopic(
                    name=spec.name,
                    num_partitions=partitions,
                    replication_factor=replication_factor,
                    topic_configs=spec.configs(replication_factor),
                )
            )
        if missing:
            try:
                await admin.create_topics(missing)
            except Exception as exc:  # another process may have created some meanwhile
                if "TopicAlreadyExists" not in type(exc).__name__ + str(exc):
                    raise
            report.created.extend(t.name for t in missing)
        if report.existing:
            described = await admin.describe_topics(report.existing)
            by_name = {d["topic"]: len(d["partitions"]) for d in described}
            for spec in specs:
                want = spec.partitions if default_partitions is None or spec.partitions == 1 else default_partitions
                have = by_name.get(spec.name)
                if have is not None and have != want:
                    report.warnings.append(f"{spec.name} has {have} partitions; the contract says {want}")
        for w in report.warnings:
            log.warning(w)
        return report
    finally:
        await admin.close()


def main() -> None:
    """`python -m credit_common.messaging.topics`: create the contract's topics that are missing."""
    import asyncio

    from credit_common.settings import get_settings

    settings = get_settings()
    report = asyncio.run(
        ensure_topics(settings.kafka_bootstrap_servers, replication_factor=settings.credit_topic_replication)
    )
    print(f"[topics] {len(report.created)} created, {len(report.existing)} already there")
    for w in report.warnings:
        print(f"[topics] warning: {w}")


if __name__ == "__main__":
    main()
