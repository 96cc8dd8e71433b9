"""Service commands: serve, db upgrade, import, screen, check, simulate, demo."""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from guard.errors import GuardError

# `guard screen` spreads a list this long or longer over every core by default.
PARALLEL_FROM = 20_000

# ---------------------------------------------------------------------------- helpers


def service_app(**config: Any):
    """Build the app from the environment, turning start-up problems into a clean exit."""
    from guard import create_app
    from guard.config import ConfigurationError

    # Only the long-running commands say that provider credentials are missing; a
    # one-off `guard keys create` has nothing to forward.
    config.setdefault("WARN_MISSING_PROVIDERS", False)
    try:
        return create_app(config)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


def configured(name: str) -> Any:
    """Return one setting as the service would see it (environment or GUARD_CONFIG file)."""
    from guard.config import ConfigurationError, settings

    try:
        return settings()[name]
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


def _guard(**config: Any):
    """The Guard façade of an app built from the environment, closed with the command."""
    from guard.services import services

    guard = services(service_app(**config)).guard
    click.get_current_context().call_on_close(guard.engine.dispose)
    return guard


def _store_errors(func):
    """Report store and input errors as one clear line instead of a traceback."""
    import functools

    from sqlalchemy.exc import SQLAlchemyError

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except GuardError as exc:
            raise click.ClickException(exc.detail) from None
        except SQLAlchemyError as exc:
            raise click.ClickException(
                f"store: {exc.__class__.__name__}: {str(exc).splitlines()[0]} "
                "(is the database reachable and migrated? run `guard db upgrade`)"
            ) from None

    return wrapper


def _progress(length: int, label: str):
    # Progress goes to stderr so that CSV or JSON on stdout stays clean.
    return click.progressbar(length=length, label=label, file=sys.stderr)


# ---------------------------------------------------------------------------- serve, db


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--threads", default=8, show_default=True, type=int)
def serve(host: str, port: int, threads: int) -> None:
    """Serve the HTTP API and provider proxy (waitress; production uses gunicorn)."""
    import waitress

    app = service_app(WARN_MISSING_PROVIDERS=True)
    click.echo(f"Contact Guard listening on http://{host}:{port}", err=True)
    waitress.serve(app, host=host, port=port, threads=threads)


@click.group()
def db() -> None:
    """Manage the store."""


@db.command("upgrade")
@click.option("--url", help="Database URL (default: GUARD_DATABASE_URL, from the environment "
                             "or the GUARD_CONFIG file, else sqlite:///guard.db).")
@_store_errors
def db_upgrade(url: str | None) -> None:
    """Migrate the store to the newest schema (the release phase runs this)."""
    from guard.store.engine import make_engine
    from guard.store.migrate import current_revision, upgrade

    url = url or configured("DATABASE_URL")

    engine = make_engine(url)
    try:
        upgrade(engine)
        click.echo(f"Store at revision {current_revision(engine)} ({engine.dialect.name}).")
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------- import

EVENT_TYPES = ("person", "account", "purchase", "contract", "consent", "case", "service",
               "invoice", "touch", "campaign", "erase")
_PLURALS = {"people": "person", "persons": "person", "touches": "touch",
            "erasures": "erase", **{f"{t}s": t for t in EVENT_TYPES}}
_LISTS = ("emails", "phones")
_INTEGERS = ("mileage", "next_due_mileage")
_NUMBERS = ("amount", "replacement_cycle_years")
_BOOLEANS = ("notify_owner", "deleted")


def event_type_of(path: Path) -> str | None:
    """Guess a CSV file's event type from its name: ``dms-purchases.csv`` → ``purchase``."""
    found = {
        _PLURALS.get(token, token)
        for token in re.split(r"[^a-z]+", path.stem.lower())
        if _PLURALS.get(token, token) in EVENT_TYPES
    }
    return found.pop() if len(found) == 1 else None


def _cell(name: str, text: str) -> Any:
    """Convert one CSV cell by its field name; leave what does not convert for the validator."""
    if name in _LISTS:
        return [part.strip() for part in re.split(r"[;,]", text) if part.strip()]
    try:
        if name in _INTEGERS:
            return int(text)
        if name in _NUMBERS:
            return float(text)
    except ValueError:
        return text
    if name in _BOOLEANS and text.lower() in ("true", "false", "yes", "no", "1", "0"):
        return text.lower() in ("true", "yes", "1")
    return text


def row_to_event(row: dict[str | None, Any], event_type: str) -> dict:
    """Turn a CSV row into an event; dotted columns (``person.email``) build nested fields."""
    if row.get(None):
        raise ValueError(f"{len(row[None])} more cells than the header has columns")
    event: dict[str, Any] = {"type": event_type}
    for column, value in row.items():
        if column is None or value is None or not value.strip():
            continue
        parts = column.strip().split(".")
        target = event
        for part in parts[:-1]:
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                raise ValueError(f"column {column!r} clashes with column {part!r}")
            target = nested
        target[parts[-1]] = _cell(parts[-1], value.strip())
    return event


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def read_events(path: Path, event_type: str | None) -> Iterator[tuple[int, dict | str]]:
    """Yield ``(line, event)`` per record, or ``(line, problem)`` for an unreadable one."""
    if path.suffix.lower() == ".csv":
        kind = event_type or event_type_of(path)
        if kind is None:
            raise click.BadParameter(
                f"cannot tell the event type from the file name {path.name!r}; pass --type",
                param_hint="--type")
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            line = reader.line_num
            for row in reader:
                try:
                    yield line + 1, row_to_event(row, kind)
                except ValueError as exc:
                    yield line + 1, str(exc)
                line = reader.line_num
        return
    with path.open(encoding="utf-8-sig") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                event = json.loads(text)
            except ValueError as exc:
                yield number, f"not valid JSON: {exc}"
                continue
            if not isinstance(event, dict):
                yield number, f"expected a JSON object, got {type(event).__name__}"
                continue
            if event_type and "type" not in event:
                event["type"] = event_type
            yield number, event


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--type", "event_type", type=click.Choice(EVENT_TYPES),
              help="Event type of a CSV file (default: from the file name).")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--show", default=20, show_default=True, type=click.IntRange(0),
              help="How many rejections to list.")
@_store_errors
def import_events(file: Path, event_type: str | None, batch_size: int, show: int) -> None:
    """Import events from JSON lines or CSV (one event type per file; dotted columns nest).

    Exits 1 when any record was rejected (the valid ones are stored).
    """
    guard = _guard()
    accepted = 0
    rejected: list[tuple[int, str]] = []
    batch: list[tuple[int, dict]] = []

    def flush() -> None:
        nonlocal accepted
        if not batch:
            return
        result = guard.ingest([event for _, event in batch])
        accepted += result["accepted"]
        rejected.extend((batch[r["index"]][0], r["detail"]) for r in result["rejected"])
        batch.clear()

    with _progress(_count_lines(file), f"Importing {file.name}") as bar:
        done = 0
        for line, record in read_events(file, event_type):
            if isinstance(record, str):
                rejected.append((line, record))
            else:
                batch.append((line, record))
                if len(batch) >= batch_size:
                    flush()
            bar.update(line - done)
            done = line
        flush()
    rejected.sort()
    click.echo(f"{file}: {accepted} accepted, {len(rejected)} rejected.")
    for line, detail in rejected[:show]:
        click.echo(f"{file}:{line}: {detail}")
    if len(rejected) > show:
        click.echo(f"… and {len(rejected) - show} more.")
    if rejected:
        sys.exit(1)


# ---------------------------------------------------------------------------- screen, check


def _attempt_options(func):
    for option in reversed((
        click.option("--channel", help="email, sms, call, mail or push."),
        click.option("--purpose", help="Why (e.g. price_offer)."),
        click.option("--sender", help="Who sends (e.g. oem, dealer:munich)."),
        click.option("--campaign"),
        click.option("--template"),
        click.option("--product"),
        click.option("--at", help="When (ISO 8601; default now)."),
    )):
        func = option(func)
    return func


def recipient(text: str | None) -> Any:
    """Read ``--to``: an address, ``salesforce:003…``, ``hubspot:501`` or ``per_…``."""
    if text is None:
        return None
    system, _, record = text.partition(":")
    if record and system in ("salesforce", "hubspot"):
        return {system: record}
    if text.startswith("per_"):
        return {"person": text}
    return text


def _attempt(**options: Any) -> dict:
    return {k: v for k, v in options.items() if v is not None}


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_attempt_options
@click.option("--column", default="to", show_default=True, help="The recipient column.")
@click.option("--commit/--dry-run", default=False, show_default=True,
              help="Record allowed contacts in the ledger.")
@click.option("--workers", type=click.IntRange(1, 64),
              help="Processes screening at once (default: one per core for lists of "
                   f"{PARALLEL_FROM:,} rows or more, else 1).")
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-",
              help="Where to write the CSV (default: stdout).")
@_store_errors
def screen(file: Path, column: str, commit: bool, workers: int | None, output,
           **options: Any) -> None:
    """Screen a CSV list of recipients; write it back with verdict, rules and decision_id."""
    from guard.checks.screening import CHUNK, collecting_rarely, screen_in_processes, screen_rows

    attempt = _attempt(**options)
    if "channel" not in attempt:
        raise click.BadParameter("required", param_hint="--channel")
    with file.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        if column not in header:
            raise click.BadParameter(f"{file.name} has no column {column!r} (columns: "
                                     f"{', '.join(header)})", param_hint="--column")
        total = sum(1 for row in reader if row)
    guard = _guard()
    try:
        guard._template(attempt, None)
    except GuardError as exc:
        raise click.BadParameter(exc.detail, param_hint=f"--{exc.field}") from None
    guard.erasure_salt()  # made once here, not raced by the workers
    if workers is None:
        workers = max(1, os.cpu_count() or 1) if total >= PARALLEL_FROM else 1
    writer = csv.writer(output)
    writer.writerow(spreadsheet_safe([*header, "verdict", "rules", "decision_id", "error"]))
    at, width = header.index(column), len(header)
    counts: dict[str, int] = {}
    # The list is streamed in chunks; only the chunks being screened are in memory. Rows
    # stay lists (as csv.DictReader would read them: blank lines skipped, short rows
    # padded, cells past the header dropped): a million rows made dicts cost the
    # command as much CPU as a worker's deciding of a tenth of them.
    with file.open(newline="", encoding="utf-8-sig") as handle, \
            _progress(total, f"Screening {file.name}") as bar, collecting_rarely():
        reader = csv.reader(handle)
        next(reader, None)
        chunks = _chunks((_cells(row, width) for row in reader if row), CHUNK)
        if workers == 1:
            screened = ((rows, list(screen_rows(guard, attempt, [r[at] for r in rows],
                                                commit))) for rows in chunks)
        else:
            kept: list[list[list[str]]] = []

            def recipients() -> Iterator[list[str]]:
                for rows in chunks:
                    kept.append(rows)
                    yield [row[at] for row in rows]

            screened = ((kept.pop(0), result) for result in screen_in_processes(
                recipients(), attempt, commit, workers))
        for rows, results in screened:
            for row, (verdict, rules, decision_id, error, _) in zip(rows, results, strict=True):
                row += (verdict, rules, decision_id, error)
                key = verdict or "invalid"
                counts[key] = counts.get(key, 0) + 1
            writer.writerows(map(spreadsheet_safe, rows))
            bar.update(len(rows))
    summary = ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items()))
    click.echo(f"{total} recipients: {summary or 'none'}.", err=True)


# OWASP, CSV injection: a spreadsheet runs a cell that starts with one of these as a
# formula (=HYPERLINK(…), +cmd|…!A0, @SUM(…)); a leading ' makes it text.
_FORMULA_START = frozenset("=+-@\t\r")
# A signed number or phone number (+4917012345, +49 (0)170 123-4567, -12.5): nothing but
# digits, spaces and ( ) . / -, so nothing a formula could call. It stays as it is, so a
# screened list still holds recipients that work (and re-screen) as they are.
_PLAIN_NUMBER = re.compile(r"[+-][0-9 ()./-]*[0-9][0-9 ()./-]*")


def spreadsheet_safe(row: list[str]) -> list[str]:
    """Prefix ``'`` to every cell a spreadsheet would run as a formula; signed numbers stay."""
    for cell in row:
        if cell[:1] in _FORMULA_START and not _PLAIN_NUMBER.fullmatch(cell):
            break
    else:
        return row
    return ["'" + cell if cell[:1] in _FORMULA_START and not _PLAIN_NUMBER.fullmatch(cell)
            else cell for cell in row]


def _cells(row: list[str], width: int) -> list[str]:
    """Fit a CSV row to the header's ``width``: pad a short row, drop cells past the header."""
    if len(row) == width:
        return row
    return row[:width] + [""] * (width - len(row))


def _chunks(rows: Iterable[list[str]], size: int) -> Iterator[list[list[str]]]:
    chunk: list[list[str]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@click.command()
@click.option("--to", help="Recipient: email, phone, or salesforce:003… / hubspot:501 / per_….")
@_attempt_options
@click.option("--attempt", "attempt_json", help="The whole attempt as JSON (SPEC §5 check body).")
@click.option("--commit/--dry-run", default=False, show_default=True,
              help="Record the decision in the ledger (store checks only).")
@click.option("--profile", "profile_file", type=click.Path(),
              help="Check against this profile JSON instead of the store.")
@click.option("--ledger", "ledger_file", type=click.Path(),
              help="With --profile: earlier contacts, a JSON list or JSON lines.")
@click.option("--campaigns", "campaigns_file", type=click.Path(),
              help="With --profile: registered campaigns, a JSON list or JSON lines.")
@click.option("--now", "now_text", help="With --profile: decide as of this ISO 8601 time.")
@click.option("--policy", "policy_file", type=click.Path(exists=True, path_type=Path),
              help="Policy file or folder (default: GUARD_POLICY or the shipped one).")
@click.pass_context
@_store_errors
def check(ctx: click.Context, to: str | None, attempt_json: str | None, commit: bool,
          profile_file: str | None, ledger_file: str | None, campaigns_file: str | None,
          now_text: str | None, policy_file: Path | None, **options: Any) -> None:
    """Decide one attempt against the store, or against a profile file with --profile."""
    attempt: dict[str, Any] = {}
    if attempt_json:
        try:
            attempt = json.loads(attempt_json)
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--attempt") from None
        if not isinstance(attempt, dict):
            raise click.BadParameter("expected a JSON object", param_hint="--attempt")
    attempt.update(_attempt(to=recipient(to), **options))
    if profile_file is not None:
        # The pure check (no store) belongs to the policy commands; hand everything over.
        from guard.cli.policy import check_profile

        ctx.invoke(check_profile, profile_file=profile_file, attempt_json=json.dumps(attempt),
                   policy_file=str(policy_file) if policy_file else None, now_text=now_text,
                   ledger_file=ledger_file, campaigns_file=campaigns_file)
        return
    if "to" not in attempt:
        raise click.BadParameter("required (or check a profile file with --profile)",
                                 param_hint="--to")
    config = {"POLICY": str(policy_file)} if policy_file else {}
    decision = _guard(**config).check(attempt, commit=commit)
    click.echo(json.dumps(decision.to_dict(), indent=2))


# ---------------------------------------------------------------------------- demo


@click.command()
@click.option("--policy", "policy_file", type=click.Path(exists=True),
              help="Policy file or folder (default: GUARD_POLICY or the shipped one).")
@click.option("--people", default=300, show_default=True, type=click.IntRange(20, 5000),
              help="How many sample people.")
@click.option("--seed", default=7, show_default=True, type=int)
def demo(policy_file: str | None, people: int, seed: int) -> None:
    """Run a marketing week over sample data in a temporary store and show the decisions.

    Needs no credentials and no network. Exits 1 if a story of the product
    specification slips through.
    """

    from guard.config import ConfigurationError
    from guard.demo import main as run_demo

    try:
        ok = run_demo(click.echo, policy_path=policy_file or configured("POLICY"),
                      seed=seed, people=people)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    if not ok:
        sys.exit(1)


# ---------------------------------------------------------------------------- simulate


@click.command()
@click.option("--since", default="30d", show_default=True,
              help="How far back to replay: 30d, 12h, 2w …")
@click.option("--policy", "policy_file", type=click.Path(exists=True),
              help="The changed policy file or folder (default: GUARD_POLICY or the shipped one).")
@click.option("--show", default=50, show_default=True, type=click.IntRange(0),
              help="How many changed decisions to list.")
@_store_errors
def simulate(since: str, policy_file: str | None, show: int) -> None:
    """Replay recorded decisions under a policy and list those that would change."""
    from datetime import UTC, datetime

    from guard.checks.simulation import replay
    from guard.config import ConfigurationError
    from guard.services import load_configured_policy
    from policies.rules.base import Duration

    try:
        window = Duration.parse(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    try:
        policy = load_configured_policy(policy_file or configured("POLICY"))
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    engine = _guard().engine
    replays = sorted(replay(engine, policy, datetime.now(UTC) - window), key=lambda r: r.at)
    changed = [r for r in replays if r.changed]
    click.echo(f"Replayed {len(replays)} decisions of the last {window.text} under "
               f"{policy.version[:19]}…: {len(changed)} would change.")
    for r in changed[:show]:
        before = f"{r.before} ({', '.join(r.before_rules) or 'no rule'})"
        after = f"{r.after.verdict} ({', '.join(r.after.rules) or 'no rule'})"
        click.echo(f"  {r.at:%Y-%m-%d %H:%M} {r.decision_id} {r.attempt.channel} "
                   f"{r.attempt.purpose} from {r.attempt.sender} to {r.attempt.to}: "
                   f"{before} -> {after}")
    if len(changed) > show:
        click.echo(f"  … and {len(changed) - show} more.")
    if changed:
        click.echo("Profiles are today's: facts learnt after a decision count as known then.")


# ---------------------------------------------------------------------------- register


def register(group: click.Group) -> None:
    """Add the service commands to the ``guard`` group."""
    for command in (serve, db, import_events, screen, check, demo):
        group.add_command(command)
    # ``guard policy`` belongs to the policy commands, which add check and test to
    # this group when they register after us; simulate replays the store, so it is ours.
    policy_group = group.commands.get("policy")
    if policy_group is None:
        policy_group = click.Group("policy", help="Validate, test and simulate policy files.")
        group.add_command(policy_group)
    policy_group.add_command(simulate)
