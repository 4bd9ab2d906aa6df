"""`credit-keys`: signing keys for departments and the portal (contracts.md, Security).

credit-keys generate --principal unit:110108-SAT     # a key file, and the `key` record to publish
credit-keys sign request.json                         # the request, signed, on stdout
credit-keys verify signed.json                        # is it signed by a key valid then?
credit-keys provision deploy/catalog                  # the local stack: a key for every unit, HTTP tokens
credit-keys token --principal operator:local          # a bearer token for the HTTP API"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from credit_common.contracts.reference import KeyRecord, UnitRecord
from credit_common.messaging.connection import librdkafka_config
from credit_common.reference.cache import ReferenceCache
from credit_common.reference.catalog import Catalog
from credit_common.reference.cli import _load_or_exit, publish_records
from credit_common.security import credentials, kafka_acl
from credit_common.security.signing import KeyLookup, Signer, Verifier, principal_of
from credit_common.security.tls import make as make_tls
from credit_common.security.tokens import (
    LOCAL_PRINCIPALS,
    PROMETHEUS_PRINCIPAL,
    PROMETHEUS_TOKEN_FILE,
    default_scopes,
    issue,
    provision_token_file,
    provision_tokens,
    write_token_file,
)
from credit_common.settings import get_settings

app = typer.Typer(
    name="credit-keys",
    help="Ed25519 signing keys: generate one, sign a request, verify a signature, provision the local stack.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Dir = Annotated[
    Path | None,
    typer.Option("--dir", help="Credentials directory (default: CREDIT_CREDENTIALS_DIR or .local/credentials)."),
]


def _read_json(path: Path) -> Any:
    raw = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        typer.echo(f"{path}: not JSON: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def generate(
    principal: Annotated[str, typer.Option("--principal", help="unit:<code> or portal.")],
    kid: Annotated[str | None, typer.Option("--kid", help="Key id (default: principal, date, random).")] = None,
    directory: Dir = None,
) -> None:
    """Make a new key for PRINCIPAL: the private key goes into its credentials file (mode 0600,
    replacing the key it held), the `key` record to publish is printed."""
    if principal_of(principal.replace(":", "/", 1)) != principal:
        typer.echo(f"only unit:<code> and portal sign requests, not {principal!r}", err=True)
        raise typer.Exit(2)
    key = Signer.generate(kid or credentials.new_kid(principal), principal)
    doc = credentials.read(principal, directory) or {"principal": principal}
    doc["signing"] = {"kid": key.kid, "private_key": key.seed}
    path = credentials.write(doc, directory)
    typer.echo(f"private key: {path}", err=True)
    record = key.record(datetime.now(UTC).replace(microsecond=0))
    typer.echo(orjson.dumps(record.model_dump(mode="json"), option=orjson.OPT_INDENT_2).decode())


@app.command()
def sign(
    file: Annotated[Path, typer.Argument(help="A request envelope (JSON); - reads stdin.")],
    principal: Annotated[
        str | None, typer.Option("--principal", help="Sign as this principal (default: the envelope's source).")
    ] = None,
    directory: Dir = None,
) -> None:
    """Print FILE signed (`signaturekid`, `signature`) with the principal's key."""
    envelope = _read_json(file)
    who = principal or principal_of(str(envelope.get("source", "")))
    key = credentials.signer(who, directory) if who else None
    if key is None:
        typer.echo(
            f"no signing key for {who or envelope.get('source')!r} in {directory or credentials.default_dir()}",
            err=True,
        )
        raise typer.Exit(2)
    typer.echo(orjson.dumps(key.sign(envelope)).decode())


@app.command()
def verify(
    file: Annotated[
        Path,
        typer.Argument(help="A signed envelope (JSON), or a designation record (its `signatures`); - reads stdin."),
    ],
    at: Annotated[
        datetime | None, typer.Option("--at", help="Time of receipt (default: the record's, else now).")
    ] = None,
    key: Annotated[
        Path | None, typer.Option("--key", help="The `key` record (default: read credit.reference.v1).")
    ] = None,
) -> None:
    """Check signatures against the public keys alone (exit status 1 when one does not verify):
    a signed envelope, or every accepted request kept in a record of GET /v1/designations/{id}."""
    doc = _read_json(file)
    kept = doc.get("signatures") if isinstance(doc, dict) and "signatures" in doc else None
    checks = (
        [(s["request"], at or datetime.fromisoformat(s["received_at"])) for s in kept]
        if isinstance(kept, list)
        else [(doc, at or datetime.now(UTC))]
    )
    if not checks:
        typer.echo("nothing signed to verify", err=True)
        raise typer.Exit(1)
    lookup: KeyLookup
    if key is not None:
        record = KeyRecord.model_validate(_read_json(key))
        lookup = {record.code: record}.get
    else:
        lookup = asyncio.run(_catalog()).key
    verifier = Verifier(lookup)
    failed = 0
    for envelope, when in checks:
        refusal = verifier.check(envelope, when)
        what = f"{envelope.get('id')} from {envelope.get('source')} with {envelope.get('signaturekid')}"
        if refusal is None:
            typer.echo(f"verified: {what} (received {when.isoformat()})")
        else:
            failed += 1
            typer.echo(f"NOT VERIFIED: {what}: {refusal.code}: {refusal.message}", err=True)
    if failed:
        raise typer.Exit(1)


async def _catalog() -> Catalog:
    cache = ReferenceCache(get_settings().kafka_bootstrap_servers, client_id="credit-keys")
    try:
        await cache.start(wait=True, timeout=60)
        return cache.catalog
    finally:
        await cache.stop()


@app.command()
def provision(
    paths: Annotated[list[Path], typer.Argument(help="The catalogue (e.g. deploy/catalog): its units get keys.")],
    directory: Dir = None,
    kafka: Annotated[
        bool, typer.Option("--kafka/--no-kafka", help="Make the SCRAM users and ACLs on the broker (as admin).")
    ] = True,
    kafka_protocol: Annotated[
        str, typer.Option("--kafka-protocol", help="How the principals connect: SASL_PLAINTEXT (loopback) or SASL_SSL.")
    ] = "SASL_PLAINTEXT",
) -> None:
    """The local stack's step: a signing key for every unit of the catalogue and for the portal
    (kept if it exists), Kafka credentials for every principal, their users and the ACL table on
    the broker (as `admin`), all written to the credentials files; the `key` records published."""
    units = [r for r in _load_or_exit(paths) if isinstance(r, UnitRecord)]
    records = credentials.provision([f"unit:{u.code}" for u in units] + ["portal"], directory)
    where = directory or credentials.default_dir()
    # HTTP bearer tokens: every principal above and the stack's own (operators, services, ...).
    holders = [r.principal for r in records] + list(LOCAL_PRINCIPALS)
    renewed = provision_tokens(holders, directory)
    provision_token_file(where / PROMETHEUS_TOKEN_FILE, PROMETHEUS_PRINCIPAL, "ops", directory)
    typer.echo(f"HTTP tokens: {len(holders)} principals, {len(renewed)} issued; JWKS {where / 'jwks.json'}.")
    settings = get_settings()
    if kafka:
        admin = settings.model_copy(update={"credit_credentials_dir": str(where)}).as_principal("admin")
        report = kafka_acl.provision_kafka(units, librdkafka_config(settings=admin), directory, kafka_protocol)
        typer.echo(f"Kafka: {report.users} users; ACLs {report.created} created, {report.deleted} deleted.")
    sent = asyncio.run(publish_records(list(records), settings.kafka_bootstrap_servers))
    typer.echo(
        f"Keys: {len(records)} principals in {where}; {sent.sent} key records published ({sent.unchanged} unchanged)."
    )


def _seconds(text: str) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text[-1:] in units:
            return timedelta(seconds=float(text[:-1]) * units[text[-1]])
        return timedelta(seconds=float(text))
    except ValueError:
        raise typer.BadParameter(f"{text!r}: seconds, or a number with s, m, h or d") from None


@app.command()
def token(
    principal: Annotated[
        str, typer.Option("--principal", help="sub: operator:<name>, unit:<code>, service:<name>, ...")
    ] = "operator:local",
    scope: Annotated[
        str | None,
        typer.Option("--scope", help='Space-separated: "internal", "ops" (default: what the principal gets).'),
    ] = None,
    ttl: Annotated[str, typer.Option("--ttl", help="Lifetime: seconds, or 30m, 12h, 30d.")] = "12h",
    out: Annotated[Path | None, typer.Option("--out", help="Write it to this file (mode 0600), not stdout.")] = None,
    directory: Dir = None,
) -> None:
    """Print a bearer token for the HTTP API signed by the local issuer (made on first use in the
    credentials directory; its public key is `jwks.json` there, which the services verify with):
    `curl -H "Authorization: Bearer $(credit-keys token)" http://127.0.0.1:8102/v1/stats`."""
    scopes = default_scopes(principal) if scope is None else scope
    value = issue(principal, scopes, _seconds(ttl), directory)
    if out is not None:
        write_token_file(out, value)
        typer.echo(f"token for {principal} ({scopes or 'no scope'}): {out}", err=True)
    else:
        typer.echo(value)


@app.command()
def tls(
    directory: Annotated[Path, typer.Option("--dir", help="Where ca.pem and broker.pem go.")],
    host: Annotated[list[str], typer.Option("--host", help="A name or address of the broker (repeat).")],
) -> None:
    """A private CA and a broker certificate for a self-contained stack's SASL_SSL listeners
    (compose): ca.pem for the clients, broker.pem (key and chain) for Kafka's PEM keystore. Kept
    when they exist. Production supplies its own."""
    files = make_tls(directory, host)
    typer.echo(f"CA: {files.ca}; broker key and certificate: {files.broker}")


def main() -> None:
    """Console script entry point (`credit-keys`)."""
    app()
