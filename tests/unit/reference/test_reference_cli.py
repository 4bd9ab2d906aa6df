"""`credit-reference`: validate prints `file:line: reason`; publish sends nothing unless all is well,
and what it sends is the contract's key, envelope and header (Kafka replaced by fakes here)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import pytest
from credit_common.contracts.envelope import CONTENT_TYPE, CloudEvent
from credit_common.contracts.reference import FieldRecord, ReferenceRecord, parse_reference_record
from credit_common.json import loads
from credit_common.reference import cli
from typer.testing import CliRunner

CATALOG_DIR = Path(__file__).resolve().parents[3] / "deploy" / "catalog"
runner = CliRunner()


def test_validate_the_shipped_catalogue() -> None:
    result = runner.invoke(cli.app, ["validate", str(CATALOG_DIR)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK: ")


def test_validate_prints_file_line_reason(tmp_path: Path) -> None:
    bad = tmp_path / "fields.yaml"
    bad.write_text("- code: taxation\n  name: Taxation\n  key_field: maybe\n", encoding="utf-8")
    result = runner.invoke(cli.app, ["validate", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{bad}:3: field taxation: key_field: Input should be a valid boolean" in result.output
    assert "1 problem: the catalogue was refused." in result.output


def test_publish_refuses_a_bad_catalogue_without_connecting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def must_not_run(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("nothing may be published")

    monkeypatch.setattr(cli, "publish_records", must_not_run)
    (tmp_path / "fields.yaml").write_text("- code: taxation\n", encoding="utf-8")
    result = runner.invoke(cli.app, ["publish", str(tmp_path), "--bootstrap-servers", "nowhere:1"])
    assert result.exit_code == 1
    assert "required key missing" in result.output


class FakeProducer:
    sent: ClassVar[list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]] | None]]] = []

    def __init__(self, **config: Any) -> None:
        assert config["enable_idempotence"] is True

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, headers: Any = None
    ) -> asyncio.Future[None]:
        assert key is not None
        self.sent.append((topic, key, value, headers))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_publish_records_sends_envelopes_skips_unchanged_and_prunes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    taxation = FieldRecord(code="taxation", name="Taxation", key_field=True)
    customs = FieldRecord(code="customs", name="Customs", key_field=True)
    on_topic: dict[str, ReferenceRecord] = {
        "field:taxation": taxation,  # unchanged: skipped
        "field:customs": FieldRecord(code="customs", name="Old name", key_field=True),
        "field:gone": FieldRecord(code="gone", name="Gone", key_field=False),
    }

    async def fake_ensure_topics(bootstrap: str, specs: Any) -> None:
        assert [s.name for s in specs] == ["credit.reference.v1"]

    async def fake_current(bootstrap: str, topic: str) -> dict[str, ReferenceRecord]:
        return on_topic

    FakeProducer.sent = []
    monkeypatch.setattr(cli, "AIOKafkaProducer", FakeProducer)
    monkeypatch.setattr(cli, "ensure_topics", fake_ensure_topics)
    monkeypatch.setattr(cli, "_current", fake_current)

    report = await cli.publish_records([taxation, customs], "fake:9092", prune=True)

    assert (report.sent, report.unchanged, report.deleted) == (1, 1, 1)
    (topic, key, value, headers), (_, gone_key, gone_value, _) = FakeProducer.sent
    assert (topic, key, headers) == (
        "credit.reference.v1",
        b"field:customs",
        [("content-type", CONTENT_TYPE.encode())],
    )
    assert value is not None
    event = CloudEvent.model_validate(loads(value))
    assert (event.type, event.source) == ("credit.reference.upserted", "platform/reference")
    assert event.time.utcoffset() is not None
    assert parse_reference_record(event.data) == customs
    assert (gone_key, gone_value) == (b"field:gone", None)

    FakeProducer.sent = []
    forced = await cli.publish_records([taxation, customs], "fake:9092", force=True)
    assert (forced.sent, forced.unchanged, forced.deleted) == (2, 0, 0)
