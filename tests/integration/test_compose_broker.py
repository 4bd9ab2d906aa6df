"""The compose broker's configuration (deploy/kafka/compose.properties) on the real broker: the
same Kafka jars the local stack runs, started from that very file with only its host names, ports
and paths moved to this machine. Its certificate is made by `credit-keys tls`, its storage is
formatted with the admin's SCRAM credential as the compose command does, and the principals come
from `credit-keys provision --kafka-protocol SASL_SSL` as the compose `init` job makes them. Then:
a service writes its own topic over TLS on the host listener (the certificate names 127.0.0.1) and
is refused another's; a client without TLS, one that trusts another CA and one with a wrong
password get nowhere."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAuthorizationFailedError
from credit_common.messaging import topics
from credit_common.messaging.connection import kafka_options
from credit_common.security import tls
from credit_common.settings import Settings
from pydantic import SecretStr

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LIBS = ROOT / ".local" / "kafka-libs"
NETWORK, CONTROLLER, HOST = 39092, 39093, 39094  # kafka:9092, kafka:9093, 127.0.0.1:19092 in compose


def render(admin_password: str, certs: Path, data: Path) -> str:
    """compose.properties with this machine's names, ports and paths; nothing else changed."""
    text = (ROOT / "deploy" / "kafka" / "compose.properties").read_text()
    for old, new in (
        ("@ADMIN_PASSWORD@", admin_password),
        ("/certs/", f"{certs}/"),
        ("/var/lib/kafka/data", str(data)),
        ("1@kafka:9093", f"1@localhost:{CONTROLLER}"),
        ("SASL_SSL://:9092", f"SASL_SSL://localhost:{NETWORK}"),
        ("CONTROLLER://:9093", f"CONTROLLER://localhost:{CONTROLLER}"),
        ("HOST://:19092", f"HOST://localhost:{HOST}"),
        ("SASL_SSL://kafka:9092", f"SASL_SSL://localhost:{NETWORK}"),
        ("HOST://127.0.0.1:19092", f"HOST://127.0.0.1:{HOST}"),
    ):
        assert old in text, f"compose.properties no longer has {old!r}: update this test"
        text = text.replace(old, new)
    return text


async def run(*args: str, env: dict[str, str] | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
    return out.decode(errors="replace")


@pytest.fixture(scope="module")
async def broker(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, str]]:
    """The compose broker, provisioned; yields the environment of a client of it (no principal)."""
    work = tmp_path_factory.mktemp("compose-broker")
    certs, data, creds = work / "certs", work / "data", work / "credentials"
    tls.make(certs, ["kafka", "localhost", "127.0.0.1"])
    password = secrets.token_urlsafe(18)
    props = work / "server.properties"
    props.write_text(render(password, certs, data))
    java = shutil.which("java") or "java"
    classpath = f"{LIBS}/*"
    cluster = "9zO66XXAQaGKFufW-KZ6-A"
    scram = f"SCRAM-SHA-512=[name=admin,password={password}]"
    storage = ("kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(props))
    await run(java, "-cp", classpath, *storage, "--add-scram", scram)  # as the compose command formats it
    log = (work / "broker.out").open("wb")
    logging = (
        f"-Dlog4j2.configurationFile={ROOT / 'deploy/kafka/log4j2.properties'}",
        f"-Dkafka.logfile={work / 'broker.log'}",
    )
    proc = await asyncio.create_subprocess_exec(
        java, "-Xmx384m", "-cp", classpath, *logging, "kafka.Kafka", str(props), stdout=log, stderr=subprocess.STDOUT
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD", "KAFKA_SECURITY_PROTOCOL", "CREDIT_PRINCIPAL")
    }
    env |= {
        "CREDIT_CREDENTIALS_DIR": str(creds),
        "KAFKA_SSL_CAFILE": str(certs / "ca.pem"),
        "KAFKA_BOOTSTRAP_SERVERS": f"localhost:{NETWORK}",
    }
    try:
        python = sys.executable
        admin_step = "credit_common.security.kafka_acl"
        await run(python, "-m", admin_step, "admin-password", f"--set={password}", "--protocol", "SASL_SSL", env=env)
        as_admin = {**env, "CREDIT_PRINCIPAL": "admin"}
        for _ in range(60):  # the broker takes a few seconds to listen
            proc_ = await asyncio.create_subprocess_exec(
                python, "-m", "credit_common.messaging.ready", f"localhost:{NETWORK}", env=as_admin
            )
            if await proc_.wait() == 0:
                break
            assert proc.returncode is None, (work / "broker.log").read_text()[-3000:]
            await asyncio.sleep(1)
        await run(python, "-m", "credit_common.messaging.topics", env=as_admin)
        keys = str(Path(python).parent / "credit-keys")
        await run(keys, "provision", str(ROOT / "deploy" / "catalog"), "--kafka-protocol", "SASL_SSL", env=as_admin)
        yield env
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        log.close()


def as_principal(env: dict[str, str], principal: str) -> Settings:
    return Settings(
        kafka_bootstrap_servers=f"127.0.0.1:{HOST}",  # the host listener: TLS names the address
        credit_credentials_dir=env["CREDIT_CREDENTIALS_DIR"],
        kafka_ssl_cafile=env["KAFKA_SSL_CAFILE"],
    ).as_principal(principal)


async def attempt(settings: Settings, topic: str) -> None:
    producer = AIOKafkaProducer(**kafka_options(settings=settings), request_timeout_ms=8000)
    try:
        await asyncio.wait_for(producer.start(), 20)
        await asyncio.wait_for(producer.send_and_wait(topic, b"compose-probe", partition=0), 20)
    finally:
        await producer.stop()


async def test_the_compose_broker_takes_only_authenticated_tls_clients(broker: dict[str, str], tmp_path: Path) -> None:
    service = as_principal(broker, "service:designation")
    assert service.kafka_security_protocol == "SASL_SSL"
    await attempt(service, topics.DESIGNATION_EVENTS)  # its own topic, over TLS on the host listener
    with pytest.raises(TopicAuthorizationFailedError):
        await attempt(service, topics.REFERENCE)  # another principal's

    other_ca = tls.make(tmp_path / "other", ["localhost"]).ca
    for refused in (
        {"kafka_security_protocol": "SASL_PLAINTEXT"},  # no TLS
        {"kafka_sasl_password": SecretStr("wrong")},
        {"kafka_ssl_cafile": str(other_ca)},  # it trusts another CA
    ):
        with pytest.raises((KafkaConnectionError, KafkaError, OSError, TimeoutError)):
            await attempt(service.model_copy(update=refused), topics.DESIGNATION_EVENTS)
