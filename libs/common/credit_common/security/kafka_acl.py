"""Kafka principals and their ACLs (contracts.md, Security), made from the catalogue.

Every principal logs in with SCRAM-SHA-512 as the user `<principal with ":" as "-">`
(`unit-110108-SAT`, `service-sharing`, `portal`); the broker's `StandardAuthorizer` refuses
whatever no ACL allows (`allow.everyone.if.no.acl.found=false`), and `admin` (the stack itself)
is the only super user. `provision_kafka` makes the broker hold exactly the table below: users
whose password is missing or changed are upserted, missing ACLs created, and ACLs of the
principals this module manages that the table no longer lists deleted (a unit made inactive
loses its write ACLs; a unit removed from the catalogue loses all). It speaks the broker's own
admin API through confluent-kafka (aiokafka's admin client has no ACL or SCRAM calls)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from credit_common.contracts.reference import UnitRecord
from credit_common.messaging import topics
from credit_common.security import credentials
from credit_common.settings import SERVICE_PORTS

SERVICES = tuple(SERVICE_PORTS)  # the five services, as settings names them
#: Principals every local stack has beside the units of its catalogue.
STACK_PRINCIPALS = (
    "admin",
    "reference",
    "portal",
    "operator:local",
    "subscriber:local",
    *(f"service:{name}" for name in SERVICES),
)
#: What each service reads and writes besides the reference topic, feedback and dead letters
#: (contracts.md, Topics). The designation service's HTTP ingress forwards signed requests, so
#: it writes the request topics too.
SERVICE_TOPICS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "designation": (
        (topics.DESIGNATION_REQUESTS, topics.OBJECTION_EVENTS, topics.FEEDBACK),
        (topics.DESIGNATION_EVENTS, topics.SUBJECT_NOTICES, *sorted(topics.REQUEST_TOPICS)),
    ),
    "sharing": (
        (topics.DESIGNATION_EVENTS, topics.OBJECTION_EVENTS, topics.WARNING_EVENTS),
        (topics.LISTS_CHANGES, topics.LISTS_PUBLIC),
    ),
    "warning": ((topics.DESIGNATION_EVENTS, topics.CONDUCT_REPORTS), (topics.WARNING_EVENTS, topics.UNIT_INBOX)),
    "objection": (
        (topics.DESIGNATION_EVENTS, topics.OBJECTION_REQUESTS),
        (topics.OBJECTION_EVENTS, topics.UNIT_INBOX, topics.SUBJECT_NOTICES),
    ),
    "cases": (
        (topics.DESIGNATION_EVENTS, topics.OBJECTION_EVENTS, topics.ENFORCEMENT_ACTIONS),
        (topics.CASES_EVENTS,),
    ),
}
UNIT_READS = (topics.FEEDBACK, topics.UNIT_INBOX, topics.LISTS_CHANGES, topics.LISTS_PUBLIC)
#: The portal also reads the subject notices it delivers (contracts.md, Topics: "read by the
#: public portal"), in consumer groups prefixed `portal.`.
PORTAL_READS = (topics.FEEDBACK, topics.LISTS_PUBLIC, topics.SUBJECT_NOTICES)
#: Users this module owns: their ACLs are pruned to the table. Anything else on the broker (a
#: managed cluster's own users) is left alone.
MANAGED_PREFIXES = ("unit-", "service-", "subscriber-", "operator-")
MANAGED_NAMES = ("portal", "reference")


@dataclass(frozen=True, order=True)
class Grant:
    """One ALLOW ACL: `operation` on a `resource` (`topic`, `group`) named `name`, matched
    `literal`ly or as a `prefixed` name."""

    principal: str
    resource: str
    name: str
    operation: str
    pattern: str = "literal"


def username(principal: str) -> str:
    """The SCRAM user of a principal (`unit:110108-SAT` logs in as `unit-110108-SAT`)."""
    return principal.replace(":", "-")


def principals(units: Iterable[UnitRecord]) -> list[str]:
    return [*STACK_PRINCIPALS, *(f"unit:{u.code}" for u in units)]


def grants(units: Iterable[UnitRecord]) -> list[Grant]:
    """The ACL table of contracts.md, Security, for a catalogue's units and the stack's principals."""
    out: list[Grant] = []

    def read(p: str, *names: str) -> None:
        out.extend(Grant(p, "topic", n, "read") for n in names)

    def write(p: str, *names: str) -> None:
        out.extend(Grant(p, "topic", n, "write") for n in names)

    def groups(p: str, prefix: str) -> None:
        out.append(Grant(p, "group", prefix, "read", "prefixed"))

    for unit in units:
        p = f"unit:{unit.code}"
        read(p, topics.REFERENCE, *UNIT_READS)
        if unit.active:
            write(p, *sorted(topics.REQUEST_TOPICS))
        groups(p, f"unit.{unit.code}.")
    read("portal", topics.REFERENCE, *PORTAL_READS)
    write("portal", topics.OBJECTION_REQUESTS)
    groups("portal", "portal.")
    read("reference", topics.REFERENCE)
    write("reference", topics.REFERENCE)
    read("subscriber:local", topics.REFERENCE, topics.LISTS_PUBLIC)
    groups("subscriber:local", "subscriber.local.")
    read("operator:local", topics.REFERENCE, topics.DEADLETTER)  # operators read the dead letters
    groups("operator:local", "operator.local.")
    for name, (reads, writes) in SERVICE_TOPICS.items():
        p = f"service:{name}"
        read(p, topics.REFERENCE, *reads)
        write(p, *writes, topics.FEEDBACK, topics.DEADLETTER)
        groups(p, name)  # `designation`, `designation.feedback`, `designation@<deployment>`
    return sorted(set(out))


def ensure_passwords(names: Iterable[str], directory: Path | None = None, protocol: str = "SASL_PLAINTEXT") -> None:
    """Every principal of `names` has Kafka credentials in its file (a password is made once and
    kept)."""
    for principal in names:
        doc = credentials.read(principal, directory) or {"principal": principal}
        kafka = doc.get("kafka") or {}
        if kafka.get("password") and kafka.get("security_protocol") == protocol:
            continue
        doc["kafka"] = {
            "security_protocol": protocol,
            "sasl_mechanism": "SCRAM-SHA-512",
            "username": username(principal),
            "password": kafka.get("password") or secrets.token_urlsafe(24),
        }
        credentials.write(doc, directory)


def admin_password(directory: Path | None = None, *, given: str | None = None, protocol: str = "SASL_PLAINTEXT") -> str:
    """The `admin` password (made on first use, or `given`: a broker formatted with it already):
    the stack formats the broker's storage with it."""
    if given:
        mine = credentials.read("admin", directory) or {"principal": "admin"}
        mine["kafka"] = {"password": given}
        credentials.write(mine, directory)
    ensure_passwords(["admin"], directory, protocol)
    doc = credentials.read("admin", directory)
    assert doc is not None
    return str(doc["kafka"]["password"])


@dataclass
class KafkaReport:
    users: int
    created: int
    deleted: int


def _managed(user: str) -> bool:
    return user.startswith(MANAGED_PREFIXES) or user in MANAGED_NAMES


def provision_kafka(
    units: list[UnitRecord], config: dict[str, Any], directory: Path | None = None, protocol: str = "SASL_PLAINTEXT"
) -> KafkaReport:
    """Make the broker at `config` (a librdkafka config of the `admin` principal) hold a SCRAM
    user for every principal and exactly the ACL table for the managed ones."""
    from confluent_kafka.admin import (
        AclBinding,
        AclBindingFilter,
        AclOperation,
        AclPermissionType,
        AdminClient,
        ResourcePatternType,
        ResourceType,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialAlteration,
        UserScramCredentialUpsertion,
    )

    names = [p for p in principals(units) if p != "admin"]
    ensure_passwords(names, directory, protocol)
    admin = AdminClient(config)
    upserts: list[UserScramCredentialAlteration] = []
    for principal in names:
        doc = credentials.read(principal, directory)
        assert doc is not None
        info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
        upserts.append(UserScramCredentialUpsertion(username(principal), info, doc["kafka"]["password"].encode()))
    for future in admin.alter_user_scram_credentials(upserts).values():
        future.result(timeout=30)

    resource = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
    pattern = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
    operation = {"read": AclOperation.READ, "write": AclOperation.WRITE}

    def binding(g: Grant) -> Any:
        return AclBinding(
            resource[g.resource],
            g.name,
            pattern[g.pattern],
            f"User:{username(g.principal)}",
            "*",
            operation[g.operation],
            AclPermissionType.ALLOW,
        )

    wanted = {binding(g) for g in grants(units)}
    anything: Any = None  # a filter's None matches every name, principal and host
    everything = AclBindingFilter(
        ResourceType.ANY, anything, ResourcePatternType.ANY, anything, anything, AclOperation.ANY, AclPermissionType.ANY
    )
    existing = set(admin.describe_acls(everything).result(timeout=30))
    managed = {b for b in existing if _managed(b.principal.removeprefix("User:"))}
    create = list(wanted - existing)
    delete = list(managed - wanted)
    if create:
        for future in admin.create_acls(create).values():
            future.result(timeout=30)
    if delete:
        filters = [
            AclBindingFilter(
                b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation, b.permission_type
            )
            for b in delete
        ]
        for future in admin.delete_acls(filters).values():
            future.result(timeout=30)
    return KafkaReport(users=len(upserts), created=len(create), deleted=len(delete))


def main() -> None:
    """`python -m credit_common.security.kafka_acl admin-password [--set PASSWORD] [--protocol P]`:
    the stack's admin password (made on first use, or the one given), for formatting the broker's
    storage; its credentials file says how clients connect (SASL_SSL in compose)."""

    import argparse

    parser = argparse.ArgumentParser(prog="python -m credit_common.security.kafka_acl")
    parser.add_argument("command", choices=["admin-password"])
    parser.add_argument("--set", dest="given", help="the password the broker was formatted with")
    parser.add_argument("--protocol", default="SASL_PLAINTEXT", choices=["SASL_PLAINTEXT", "SASL_SSL"])
    args = parser.parse_args()
    print(admin_password(given=args.given, protocol=args.protocol))


if __name__ == "__main__":
    main()
