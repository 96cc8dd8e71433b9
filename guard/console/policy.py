"""The policy page: rules in force; a draft checked, tested, simulated and published.

Where the policy comes from decides what Publish does. With ``GUARD_POLICY``
naming files, the files are the truth (kept in version control, deployed):
the console shows the change to make and writes no file. Without it, the
store keeps versions: Publish adds one, every replica follows within seconds
(``guard.services.PolicyWatch``), and any earlier one is restored in one click.
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path

import sqlalchemy as sa
from flask import current_app, redirect, request, url_for

from guard.checks.simulation import replay
from guard.console import audit, charts, versions
from guard.console.decisions import DECIDED
from guard.console.pages import PageError, bp, engine, page, require_change
from guard.services import services
from guard.store.engine import read_only
from guard.store.tables import ledger
from policies import Policy, PolicyError, default_policy_path, parse_policy
from policies.casebook import examples_path, load_cases, run_cases
from policies.model import VERDICTS

DRAFT_MAX = 512 * 1024
SIMULATE_DAYS = 7
SIMULATE_MAX_DAYS = 90
# A simulation on the page replays at most this many decisions; the CLI replays any number.
SIMULATE_MAX_DECISIONS = 20_000
SHOW_CHANGED = 50


@dataclass(frozen=True)
class Source:
    """Where the policy in force comes from, and the file a draft stands for."""

    files: Path | None  # GUARD_POLICY, or None: the store (else the shipped default)
    file: str  # the name problems and the version carry

    @property
    def from_files(self) -> bool:
        return self.files is not None


def source() -> Source:
    """Say where the policy comes from, and which file the draft edits."""
    configured = services().policies is None
    if not configured:
        return Source(None, versions.NAME)
    path = Path(current_app.config["POLICY"])
    if path.is_dir():
        chosen = request.values.get("file") or ""
        names = _folder(path)
        if chosen not in names:
            chosen = names[0] if names else ""
        return Source(path, str(path / chosen))
    return Source(path, str(path))


def _folder(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def current_text(where: Source) -> str:
    """The text a draft starts from: the file, the stored version in force, or the default."""
    if where.from_files:
        return Path(where.file).read_text()
    watch = services().policies
    row = versions.get(engine(), watch.marker) if watch.marker else None
    return row.text if row else default_policy_path().read_text()


def draft_policy(where: Source, draft: str) -> Policy:
    """Build the policy the draft makes; raise PolicyError listing every problem."""
    if not where.from_files:
        return versions.parse(draft)
    if where.files.is_dir():
        sources = [(str(where.files / name), (where.files / name).read_bytes())
                   for name in _folder(where.files)]
        sources = [(name, draft.encode() if name == where.file else data)
                   for name, data in sources]
        return parse_policy(sources)
    return parse_policy([(where.file, draft)])


def problems_of(where: Source, exc: PolicyError) -> list[dict]:
    """Each problem as ``line N: message`` (other files named), with the line's text."""
    found = []
    for problem in exc.problems:
        found.append({"line": problem.line, "message": problem.message,
                      "file": None if problem.file == where.file else Path(problem.file).name})
    return found


def _draft() -> str:
    draft = request.form.get("policy")
    if draft is None:
        raise PageError("policy: the form has no policy text")
    if len(draft) > DRAFT_MAX:
        raise PageError(f"policy: at most {DRAFT_MAX // 1024} KiB")
    return draft.replace("\r\n", "\n")


def _rules(policy: Policy) -> list[dict]:
    rows = []
    for rule in policy.rules:
        scope = getattr(rule, "scope", None)
        parts = []
        for name in ("purposes", "categories", "channels", "senders"):
            values = getattr(scope, name, None) if scope is not None else None
            if values:
                parts.append(f"{name}: {', '.join(sorted(values))}")
        rows.append({"id": rule.id, "kind": rule.kind, "mode": rule.mode,
                     "scope": "; ".join(parts) or "everything",
                     "when": getattr(rule.when, "source", None),
                     "condition": getattr(getattr(rule, "condition", None), "source", None)})
    return rows


def _render(where: Source, draft: str, *, status: int = 200, **context):
    policy = services().guard.policy
    history = versions.history(engine()) if not where.from_files else []
    watch = services().policies
    lines = draft.split("\n")
    return page("console/policy.html", status=status, title="Policy", where=where,
                policy=policy, rules=_rules(policy), draft=draft, lines=lines,
                history=history, current_id=watch.marker if watch else None,
                failed=watch.failed if watch else None,
                files=_folder(where.files) if where.from_files and where.files.is_dir() else [],
                file_name=Path(where.file).name, **context)


@bp.get("/policy")
def policy():
    """Show the rules in force and the editor holding the current policy."""
    where = source()
    done, number = request.args.get("done"), request.args.get("version") or ""
    notice = None
    if done == "published" and number.isdigit():
        notice = f"Published version {number}; every replica uses it within seconds."
    elif done == "restored" and number.isdigit():
        notice = f"Restored version {number}; every replica uses it within seconds."
    return _render(where, current_text(where), notice=notice)


@bp.post("/policy")
def policy_action():
    """Check, test, simulate or publish the draft in the editor."""
    where = source()
    draft = _draft()
    action = request.form.get("action") or "check"
    if action not in ("check", "test", "simulate", "publish"):
        raise PageError(f"action: {action!r} is not one of check, test, simulate, publish")
    try:
        drafted = draft_policy(where, draft)
    except PolicyError as exc:
        outcome = "nothing was published" if action == "publish" else "fix them first"
        return _render(where, draft, status=422, action=action,
                       problems=problems_of(where, exc),
                       problem=f"The draft has {len(exc.problems)} problem(s); {outcome}.")
    if action == "check":
        return _render(where, draft, action=action, problems=[],
                       notice=f"No problems: {len(drafted.rules)} rules, version "
                              f"{drafted.version[:19]}…")
    if action == "test":
        return _render(where, draft, action=action, **_test(where, drafted))
    if action == "simulate":
        return _render(where, draft, action=action, **_simulate(drafted))
    return _publish(where, draft, drafted)


def _test(where: Source, drafted: Policy) -> dict:
    folder = examples_path(where.files if where.from_files else default_policy_path())
    if not folder.exists():
        return {"problem": f"No example cases at {folder}: write some to test the draft."}
    try:
        cases = load_cases(folder, drafted)
    except PolicyError as exc:
        return {"problem": "The example cases have problems: "
                           + "; ".join(str(p) for p in exc.problems[:5])}
    outcomes = run_cases(drafted, cases)
    failed = sum(not o.passed for o in outcomes)
    return {"outcomes": outcomes,
            "notice" if not failed else "problem":
                f"{len(outcomes) - failed} passed, {failed} failed ({folder})"}


def _simulate(drafted: Policy) -> dict:
    raw = request.form.get("days") or str(SIMULATE_DAYS)
    if not raw.isdigit() or not 1 <= int(raw) <= SIMULATE_MAX_DAYS:
        return {"problem": f"days: a whole number from 1 to {SIMULATE_MAX_DAYS}, got {raw!r}"}
    days = int(raw)
    since = services().guard.clock() - timedelta(days=days)
    # The replay reads every decision in its window at once: start it at the newest
    # SIMULATE_MAX_DECISIONS, found through the ledger's time index.
    with read_only(engine().connect()) as conn:
        oldest = conn.execute(
            sa.select(ledger.c.at).where(ledger.c.at >= since, DECIDED)
            .order_by(ledger.c.at.desc()).offset(SIMULATE_MAX_DECISIONS - 1).limit(1)
        ).scalar()
    cut = oldest is not None
    if cut:
        since = max(since, oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC))
    before, after = Counter({v: 0 for v in VERDICTS}), Counter({v: 0 for v in VERDICTS})
    changed, total = [], 0
    for r in replay(engine(), drafted, since):
        if total == SIMULATE_MAX_DECISIONS:
            break  # decisions made at the same moment as the cut-off
        total += 1
        before[r.before] += 1
        after[r.after.verdict] += 1
        if r.changed:
            changed.append(r)
    changed.sort(key=lambda r: r.at, reverse=True)
    return {"simulation": {"days": days, "total": total, "cut": cut, "since": since,
                           "limit": SIMULATE_MAX_DECISIONS, "before": before,
                           "after": after, "changed": changed[:SHOW_CHANGED],
                           "changed_count": len(changed),
                           "chart": charts.before_after(before, after)}}


def _publish(where: Source, draft: str, drafted: Policy):
    who = require_change()
    if where.from_files:
        current = Path(where.file).read_text()
        diff = list(difflib.unified_diff(current.splitlines(), draft.splitlines(),
                                         fromfile=where.file, tofile=where.file + " (draft)",
                                         lineterm=""))
        return _render(where, draft, action="publish", diff=diff,
                       notice="GUARD_POLICY names files, so the console writes none: make this "
                              f"change to {where.file} where you keep it, then deploy.")
    with engine().begin() as conn:
        version_id = versions.publish(conn, draft, drafted.version, who.key_id, who.key_name)
        audit.record(conn, who, "policy.publish", f"version {version_id}", drafted.version)
    services().policies.refresh(force=True)
    return redirect(url_for("console.policy", done="published", version=version_id))


@bp.post("/policy/versions/<version_id>/restore")
def restore_version(version_id: str):
    """Put an earlier stored version back in force."""
    who = require_change()
    if source().from_files:
        raise PageError("GUARD_POLICY names files: restore an earlier version of them "
                        "where you keep them.", 409)
    row = versions.get(engine(), version_id)
    if row is None:
        raise PageError(f"No stored policy version {version_id!r}.", 404)
    try:
        versions.parse(row.text)
    except PolicyError as exc:
        raise PageError(f"Version {row.id} no longer loads: {exc.problems[0]}", 409) from None
    with engine().begin() as conn:
        versions.restore(conn, row.id)
        audit.record(conn, who, "policy.restore", f"version {row.id}", row.version)
    services().policies.refresh(force=True)
    return redirect(url_for("console.policy", done="restored", version=row.id))
