"""Kafka authorisation on the real broker (contracts.md, Security): a client without credentials
can do nothing, and each principal can do exactly what the contract's ACL table allows.

The table below is written from the contract's text, not from `kafka_acl.grants` (the code under
test). Every principal is probed on every topic of the contract, for reading (a fetch of
partition 0) and for writing (a produce of a record too large for the broker: authorised, it is
refused for its size; not, for authorisation; either way nothing lands on the platform's topics),
and on consumer groups inside and outside its prefix; every probe must be allowed or refused by
the broker's authoriser exactly as the table says."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka import TopicPartition as AioPartition
from aiokafka.errors import TopicAuthorizationFailedError
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from credit_common.messaging import topics
from credit_common.messaging.connection import kafka_options, librdkafka_config
from credit_common.settings import Settings

pytestmark = pytest.mark.integration

T = topics
EVERY_TOPIC = tuple(spec.name for spec in topics.TOPICS)
REQUESTS = (T.DESIGNATION_REQUESTS, T.OBJECTION_REQUESTS, T.CONDUCT_REPORTS, T.ENFORCEMENT_ACTIONS)
UNIT_READS = (T.REFERENCE, T.FEEDBACK, T.UNIT_INBOX, T.LISTS_CHANGES, T.LISTS_PUBLIC)
EMITS = (T.FEEDBACK, T.DEADLETTER)  # every service answers and dead-letters


@dataclass(frozen=True)
class Allowed:
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    group_prefix: str | None


EXPECTED: dict[str, Allowed] = {
    "unit:110108-SAT": Allowed(UNIT_READS, REQUESTS, "unit.110108-SAT."),
    # made inactive in the catalogue: it still reads its answers, it may no longer write
    "unit:100000-CFDA": Allowed(UNIT_READS, (), "unit.100000-CFDA."),
    # the portal delivers the subject notices (contracts.md, Topics), reading them in its groups
    "portal": Allowed((T.REFERENCE, T.FEEDBACK, T.LISTS_PUBLIC, T.SUBJECT_NOTICES), (T.OBJECTION_REQUESTS,), "portal."),
    "reference": Allowed((T.REFERENCE,), (T.REFERENCE,), None),
    "subscriber:local": Allowed((T.REFERENCE, T.LISTS_PUBLIC), (), "subscriber.local."),
    "operator:local": Allowed((T.REFERENCE, T.DEADLETTER), (), "operator.local."),
    "service:designation": Allowed(
        (T.REFERENCE, T.DESIGNATION_REQUESTS, T.OBJECTION_EVENTS, T.FEEDBACK),
        (T.DESIGNATION_EVENTS, T.SUBJECT_NOTICES, *REQUESTS, *EMITS),  # its HTTP ingress forwards requests
        "designation",
    ),
    "service:sharing": Allowed(
        (T.REFERENCE, T.DESIGNATION_EVENTS, T.OBJECTION_EVENTS, T.WARNING_EVENTS),
        (T.LISTS_CHANGES, T.LISTS_PUBLIC, *EMITS),
        "sharing",
    ),
    "service:warning": Allowed(
        (T.REFERENCE, T.DESIGNATION_EVENTS, T.CONDUCT_REPORTS), (T.WARNING_EVENTS, T.UNIT_INBOX, *EMITS), "warning"
    ),
    "service:objection": Allowed(
        (T.REFERENCE, T.DESIGNATION_EVENTS, T.OBJECTION_REQUESTS),
        (T.OBJECTION_EVENTS, T.UNIT_INBOX, T.SUBJECT_NOTICES, *EMITS),
        "objection",
    ),
    "service:cases": Allowed(
        (T.REFERENCE, T.DESIGNATION_EVENTS, T.OBJECTION_EVENTS, T.ENFORCEMENT_ACTIONS),
        (T.CASES_EVENTS, *EMITS),
        "cases",
    ),
}
PROBE = b"acl-probe: not an event"
OVERSIZED = b"acl-probe " * 150_000  # 1.5 MB: past the broker's message.max.bytes


def can_write(config: dict[str, object], topic: str) -> bool:
    """A produce the broker authorises and then refuses for its size (nothing is written), or
    refuses as unauthorised: the probes leave no record on the contract's topics."""
    outcome: list[KafkaError | None] = []
    producer = Producer({**config, "message.max.bytes": 4_000_000, "message.timeout.ms": 15_000})
    producer.produce(topic, OVERSIZED, key=b"acl-probe", partition=0, on_delivery=lambda err, _m: outcome.append(err))
    producer.flush(20)
    assert outcome, f"no delivery report for {topic}"
    err = outcome[0]
    assert err is not None, f"{topic}: a {len(OVERSIZED):,}-byte record was written"
    if err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
        return True  # authorised: it reached the log's own checks
    assert err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, f"{topic}: {err}"
    return False


async def can_read(settings: Settings, topic: str) -> bool:
    """Metadata first (librdkafka): a principal that may neither read nor write a topic does not
    even see it. Then fetches of partition 0 without a group (aiokafka, which raises the broker's
    refusal of a fetch): refused at once, or answered (records or none) for two seconds."""
    consumer = Consumer({**librdkafka_config(settings=settings), "group.id": "acl-probe-metadata"})
    try:
        metadata = await asyncio.to_thread(consumer.list_topics, topic, 15)
    finally:
        consumer.close()
    err = metadata.topics[topic].error
    if err is not None:
        assert err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, f"{topic}: {err}"
        return False
    fetcher = AIOKafkaConsumer(**kafka_options(settings=settings), enable_auto_commit=False, fetch_max_wait_ms=100)
    await fetcher.start()
    try:
        tp = AioPartition(topic, 0)
        fetcher.assign([tp])
        fetcher.seek(tp, 0)
        try:
            await fetcher.getmany(tp, timeout_ms=2000)
        except TopicAuthorizationFailedError:
            return False
        return True
    finally:
        await fetcher.stop()


def can_join(config: dict[str, object], group: str) -> bool:
    consumer = Consumer({**config, "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.subscribe([T.REFERENCE])
        for _ in range(100):
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is None:
                return True  # joined and fetched: the group is its own
            if err.code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
                return False
            if err.code() != KafkaError._PARTITION_EOF:
                raise AssertionError(f"{group}: {err}")
        raise AssertionError(f"neither a record nor a refusal for group {group} in 20 s")
    except KafkaException as exc:
        if exc.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
            return False
        raise
    finally:
        consumer.close()


@pytest.mark.parametrize("principal", list(EXPECTED))
async def test_each_principal_does_exactly_what_its_acls_allow(stack: Settings, principal: str) -> None:
    settings = stack.as_principal(principal)
    config = librdkafka_config(settings=settings)
    allowed = EXPECTED[principal]
    wrong: list[str] = []
    reads = await asyncio.gather(*(can_read(settings, topic) for topic in EVERY_TOPIC))
    for topic, readable in zip(EVERY_TOPIC, reads, strict=True):
        for operation, got, expected in (
            ("read", readable, topic in allowed.reads),
            ("write", await asyncio.to_thread(can_write, config, topic), topic in allowed.writes),
        ):
            if got != expected:
                wrong.append(f"{operation} {topic}: {'allowed' if got else 'refused'}, the contract says otherwise")
    prefix = allowed.group_prefix
    own = (
        f"{prefix}{'' if prefix is None or prefix.endswith('.') else '.'}probe-{uuid.uuid4().hex[:6]}"
        if prefix
        else None
    )
    if own is not None and not await asyncio.to_thread(can_join, config, own):
        wrong.append(f"its own group {own} refused")
    for foreign in ("sharing", "unit.440000-GAC.liaison", "subscriber.other.feed"):
        if allowed.group_prefix and foreign.startswith(allowed.group_prefix):
            continue
        if await asyncio.to_thread(can_join, config, foreign):
            wrong.append(f"joined the group {foreign} of another principal")
    assert not wrong, f"{principal}:\n" + "\n".join(wrong)


async def test_a_client_without_credentials_can_do_nothing(stack: Settings) -> None:
    bootstrap = {"bootstrap.servers": stack.kafka_bootstrap_servers, "socket.timeout.ms": 5000}
    portal = librdkafka_config(settings=stack.as_principal("portal"))
    for config, expected in (
        (bootstrap, KafkaError._ALL_BROKERS_DOWN),  # no SASL at all: the broker hangs up
        ({**portal, "sasl.password": "wrong"}, KafkaError._AUTHENTICATION),
        ({**portal, "sasl.username": "nobody"}, KafkaError._AUTHENTICATION),
    ):
        errors: list[KafkaError] = []
        producer = Producer({**config, "message.timeout.ms": 4000, "error_cb": errors.append, "log_level": 0})
        outcome: list[KafkaError | None] = []

        def delivered(err: KafkaError | None, _msg: object, out: list[KafkaError | None] = outcome) -> None:
            out.append(err)

        producer.produce(T.DESIGNATION_REQUESTS, PROBE, on_delivery=delivered)
        await asyncio.to_thread(producer.flush, 15)
        assert outcome, "no delivery report"
        assert outcome[0] is not None, f"a client with {sorted(config)} wrote to the broker"
        assert expected in {e.code() for e in errors}, f"expected {expected}, the client saw {errors[:3]}"
        del producer  # librdkafka stops reconnecting when the client is destroyed
