"""`credit-import`: a unit's historical entries, from a JSONL or CSV file, to the platform.

credit-import entries.jsonl --unit 110000-SAT              # send, wait for the answers, print the summary
credit-import entries.csv --unit 110000-SAT --dry-run      # judge the file alone: no connection
credit-import entries.csv --unit 110000-SAT --timeout 600  # stop waiting after 10 min; run again to resume

A thin wrapper: `credit_common.imports.client.run_import` does the work (and is what tests and
benchmarks call), `dryrun.dry_run` the dry run."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from aiokafka.errors import (
    AuthenticationFailedError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
)
from rich.console import Console
from rich.markup import escape

from credit_common.clock import clock_from, local_today
from credit_common.contracts.requests import IMPORT_BATCH_MAX
from credit_common.imports.client import run_import
from credit_common.imports.dryrun import dry_run
from credit_common.imports.files import ImportFileError
from credit_common.imports.results import (
    EXIT_INCOMPLETE,
    EXIT_USAGE,
    ImportSummary,
    default_refusals_path,
    write_refusals,
)
from credit_common.imports.state import UNIT_CODE, StateError, default_state_dir
from credit_common.security import credentials
from credit_common.security.signing import Signer
from credit_common.settings import Settings, get_settings

#: Refusals printed after the summary; all of them are in the refusals file.
SHOWN = 20

app = typer.Typer(
    name="credit-import",
    help="Import a unit's historical list entries (JSONL or CSV) into the platform.",
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    typer.echo(f"credit-import: {message}", err=True)
    return typer.Exit(code)


def _settings(unit: str, directory: Path, bootstrap: str | None) -> Settings:
    """Kafka as the unit, from its credentials file; without one, as the environment says (a
    department whose settings come from its own secret store)."""
    try:
        settings = get_settings()
        if bootstrap:
            settings = settings.model_copy(update={"kafka_bootstrap_servers": bootstrap})
        if credentials.file_of(f"unit:{unit}", directory).exists():
            settings = settings.model_copy(update={"credit_credentials_dir": str(directory)})
            settings = settings.as_principal(f"unit:{unit}")
    except ValueError as exc:
        raise _fail(f"settings: {exc}") from None
    return settings


def _signer(unit: str, directory: Path, key_file: Path | None) -> Signer:
    principal = f"unit:{unit}"
    where = str(key_file or credentials.file_of(principal, directory))
    try:
        if key_file is not None:
            doc = orjson.loads(key_file.read_bytes())
            if not isinstance(doc, dict):
                raise ValueError("not a credentials file (a JSON object with `signing`)")
            doc.setdefault("principal", principal)
            if doc["principal"] != principal:
                raise _fail(f"{key_file} holds the key of {doc['principal']}, not of {principal}")
            key = credentials.signer_of(doc)
        else:
            key = credentials.signer(principal, directory)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _fail(f"signing key in {where}: {exc}") from None
    if key is None:
        raise _fail(
            f"no signing key for {principal} in {where}: every request is signed "
            f"(credit-keys generate --principal {principal}, or --key-file PATH)"
        )
    return key


async def _run(
    path: Path,
    unit: str,
    settings: Settings,
    signer: Signer,
    *,
    state_dir: Path,
    batch_size: int,
    timeout: float | None,
) -> ImportSummary:
    """`run_import`, the first Ctrl-C ending it as a timeout would (the state kept; the summary
    printed), a second one at once."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def interrupted() -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, interrupted)
    try:
        return await run_import(
            path,
            unit,
            settings=settings,
            signer=signer,
            state_dir=state_dir,
            batch_size=batch_size,
            timeout=timeout,
            stop=stop,
        )
    finally:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)


def _reason(error: dict[str, Any]) -> str:
    field = f" ({error['field']})" if error.get("field") else ""
    return f"{error.get('code')}{field}: {error.get('message')}"


def _report(summary: ImportSummary, console: Console, written: Path | None) -> None:
    s = summary
    would = "would be " if s.dry_run else ""
    title = "Dry run" if s.dry_run else ("Import (resumed)" if s.resumed else "Import")
    console.print(f"[bold]{title}[/] of {escape(str(s.file))} as unit {escape(s.unit)}")

    def row(label: str, n: int, rest: str = "") -> None:
        console.print(f"  {label:<34}{n:>10,}{rest}")

    row("entries read", s.read)
    messages = f"{s.messages:,} message{'s' if s.messages != 1 else ''} of at most {s.batch_size:,} entries"
    row(would + "sent", s.sendable, f"  in {messages}")
    if not s.dry_run:
        row("imported", s.imported)
    row(would + "refused", len(s.refused))
    for code, n in s.by_code().most_common():
        row(f"  {code}", n)
    if s.dry_run:
        console.print(
            "  The catalogue's rules (the unit's authorisation and level, the standards, their periods, "
            "today's lists) are checked by the platform."
        )
    refusals = s.sorted_refusals()
    for r in refusals[:SHOWN]:
        where = f"line {r.line or '?'}" + (f" ref {r.ref}" if r.ref is not None else "")
        console.print(f"  {escape(where)}: {escape('; '.join(map(_reason, r.errors)))}")
    if len(refusals) > SHOWN:
        console.print(f"  ... and {len(refusals) - SHOWN:,} more")
    if written is not None:
        console.print(f"Refusals: {escape(str(written))}")
    if not s.complete:
        console.print(
            f"[yellow]Incomplete[/]: {s.answered_batches:,} of {s.messages:,} messages answered so far. "
            f"Run the same command again to resume (state: {escape(str(s.state_file))})."
        )


@app.command(
    help="Send FILE (JSONL: one entry a line; CSV: a header row and the columns ref, list, standard, "
    "subject_kind, subject_scheme, subject_id, subject_name, subject_legal_representative, "
    "decision_document_no, decision_decided_on, decision_legal_basis, decision_facts, effective_from, "
    "effective_to, removed_on, removal_reason, checksum_override_reason) as `credit.designation.import` "
    "requests of unit CODE, signed with its key, and wait for the answers. Run again, it resumes where "
    "it stopped. Exit status: 0 every entry imported, 3 finished with refusals, 1 incomplete, 2 a usage "
    "or credentials error. The file's own faults are found here; the catalogue's rules (the unit's "
    "authorisation, the standards) are checked by the platform."
)
def command(
    file: Annotated[
        Path, typer.Argument(help="FILE.jsonl or FILE.csv (UTF-8).", metavar="FILE", exists=True, dir_okay=False)
    ],
    unit: Annotated[str, typer.Option("--unit", metavar="CODE", help="The importing unit's code (e.g. 110000-SAT).")],
    dry: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Read and judge the whole file without connecting: the contract, repeated refs, identifiers, "
            "dates after today, periods. The catalogue's rules are the platform's.",
        ),
    ] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=IMPORT_BATCH_MAX, help="Entries a message carries at most.")
    ] = IMPORT_BATCH_MAX,
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="Where imports keep their state (~/.local/state/credit-import).")
    ] = None,
    refusals: Annotated[
        Path | None, typer.Option("--refusals", help="The refusals file (JSONL; default FILE.refused.jsonl).")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0, help="Seconds to wait at most (default: until done).")
    ] = None,
    credentials_dir: Annotated[
        Path | None, typer.Option("--credentials-dir", help="Credentials (CREDIT_CREDENTIALS_DIR, .local/credentials).")
    ] = None,
    key_file: Annotated[
        Path | None, typer.Option("--key-file", help="The unit's signing key: a credentials file with `signing`.")
    ] = None,
    bootstrap: Annotated[str | None, typer.Option("--bootstrap", help="Kafka bootstrap servers.")] = None,
) -> None:
    if not UNIT_CODE.match(unit):
        raise _fail(f"--unit {unit!r} is not a unit code")
    console = Console(highlight=False, soft_wrap=True)  # a refusal is one line, piped or not
    states = state_dir or default_state_dir()
    directory = credentials_dir or credentials.default_dir()
    try:
        if dry:
            try:
                now = get_settings().credit_now
            except ValueError:
                now = None
            summary = dry_run(file, unit, today=local_today(clock_from(now)), batch_size=batch_size)
        else:
            settings = _settings(unit, directory, bootstrap)
            signer = _signer(unit, directory, key_file)
            run = _run(file, unit, settings, signer, state_dir=states, batch_size=batch_size, timeout=timeout)
            summary = asyncio.run(run)
    except (ImportFileError, StateError) as exc:
        raise _fail(str(exc)) from None
    except (AuthenticationFailedError, SaslAuthenticationFailed, TopicAuthorizationFailedError) as exc:
        raise _fail(f"Kafka refused unit {unit}: {exc}") from None
    except (KafkaError, LookupError, OSError) as exc:
        raise _fail(f"{type(exc).__name__}: {exc} (run again to resume)", EXIT_INCOMPLETE) from None
    written = None
    if summary.refused and (refusals is not None or not summary.dry_run):
        fallback = None if summary.state_file is None else summary.state_file.with_suffix(".refused.jsonl")
        try:
            written = write_refusals(summary.sorted_refusals(), refusals or default_refusals_path(file), fallback)
        except OSError as exc:
            console.print(f"[red]Refusals not written[/]: {exc}")
    _report(summary, console, written)
    if not summary.dry_run and summary.batch_size != batch_size:
        console.print(f"(batch size {summary.batch_size:,}, as when this import began)")
    raise typer.Exit(summary.exit_code)


def main() -> None:
    """Console script entry point (`credit-import`)."""
    app()


if __name__ == "__main__":
    main()
