"""Policy files: load YAML, validate every part, build immutable rules.

A policy is one YAML file or a folder of them (merged in file-name order).
Loading checks everything an admin can get wrong and reports all problems at
once as ``file:line: message``; the hot path never sees YAML or parses CEL.
See ``policies/default.yaml`` for the file shape.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
import yaml

from policies.cel import Condition
from policies.model import CATEGORIES, CHANNELS, DEFAULT_PURPOSES, Attempt
from policies.rules.base import ConfigError, Rule, Scope, convert

TOP_LEVEL_KEYS = ("description", "purposes", "senders", "ownership", "defaults", "rules")
COMMON_RULE_KEYS = ("id", "kind", "mode", "message", "effect", "purposes", "categories",
                    "channels", "senders", "when")
SCOPE_KEYS = ("purposes", "categories", "channels", "senders")
MODES = ("enforce", "monitor")
STAGES = ("prospect", "opportunity", "customer")
# An owner may be a sender unit, or "whoever owns the person / their account".
OWNER_REFERENCES = ("person.owner", "account.owner")
UNKNOWN_RECIPIENT_EFFECTS = ("allow", "block")

# When a policy names no senders, these units are known (SPEC §3).
DEFAULT_SENDERS = ("oem", "sales", "service", "billing", "dealer:*")
# Frequency and duplicate rules count contacts over weeks; even a policy
# without them keeps a month of ledger at hand for the decision log.
MIN_LEDGER_WINDOW = timedelta(days=30)
# Rule kinds that read the ledger (their durations bound how far back it is fetched).
LEDGER_KINDS = frozenset({"frequency_cap", "duplicate_content", "prerequisite"})
CAMPAIGN_KINDS = frozenset({"campaign_registry"})
# Senders may be open-ended (dealer:<id>); bound the scope memo all the same.
_RULES_FOR_LIMIT = 4096

_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_.:-]*$")
_SENDER = re.compile(r"^[A-Za-z0-9_.:*?\[\]-]+$")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a policy or case file, with where it is."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class PolicyError(ValueError):
    """A policy (or example case file) that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True, slots=True)
class Defaults:
    """What the policy assumes when a person or attempt does not say."""

    timezone: str = "UTC"
    region: str | None = None
    unknown_recipient: str = "allow"


@dataclass(frozen=True)
class Policy:
    """A loaded, validated policy: vocabulary, ownership, defaults and rules."""

    version: str
    purposes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType(
        dict(DEFAULT_PURPOSES)))
    senders: tuple[str, ...] = DEFAULT_SENDERS
    ownership: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    defaults: Defaults = Defaults()
    rules: tuple[Rule, ...] = ()
    channels: tuple[str, ...] = CHANNELS
    files: tuple[str, ...] = ()

    def category(self, purpose: str) -> str | None:
        """Return the category of a purpose, or None for a purpose the policy does not know."""
        return self.purposes.get(purpose)

    def rules_for(self, attempt: Attempt) -> tuple[Rule, ...]:
        """Return the rules whose scope takes the attempt, in policy order."""
        return self.scoped(attempt)[1]

    def scoped(self, attempt: Attempt) -> tuple[str | None, tuple[Rule, ...]]:
        """Return the attempt's category and the rules whose scope takes it, in policy order.

        Scope depends only on purpose, channel and sender, so the answer is
        worked out once per combination and kept; the hot path then skips
        every rule that could never apply.
        """
        key = (attempt.purpose, attempt.channel, attempt.sender)
        memo = self._scoped_memo
        found = memo.get(key)
        if found is not None:
            return found
        category = self.category(attempt.purpose)
        found = (category, tuple(r for r in self.rules if r.in_scope(attempt, category)))
        if len(memo) >= _RULES_FOR_LIMIT:
            memo.clear()
        memo[key] = found
        return found

    @cached_property
    def _scoped_memo(self) -> dict[tuple[str, str, str], tuple[str | None, tuple[Rule, ...]]]:
        # A frozen dataclass still has a __dict__; the memo is not a field.
        return {}

    def knows_sender(self, sender: str) -> bool:
        """Say whether a sender is a declared unit or matches a declared pattern."""
        return isinstance(sender, str) and any(
            sender == s or fnmatch.fnmatchcase(sender, s) for s in self.senders
        )

    @cached_property
    def ledger_window(self) -> timedelta:
        """How far back any rule looks into the ledger (at least 30 days)."""
        longest = MIN_LEDGER_WINDOW
        for rule in self.rules:
            if rule.kind in LEDGER_KINDS or getattr(rule, "reads_ledger", False):
                longest = max([longest, *_durations(rule)])
        return longest

    @cached_property
    def campaign_needed(self) -> bool:
        """Say whether any rule reads registered campaigns."""
        return any(r.kind in CAMPAIGN_KINDS or getattr(r, "reads_campaigns", False)
                   for r in self.rules)


def default_policy_path() -> Path:
    """Return the path of the shipped default policy."""
    return Path(__file__).with_name("default.yaml")


def load_policy(path: str | Path, kinds: Mapping[str, type[Rule]] | None = None) -> Policy:
    """Load a policy file, or a folder of ``*.yaml`` / ``*.yml`` files; raise PolicyError.

    ``kinds`` replaces the registry of rule kinds (tests use small stand-ins).
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(
            (p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()),
            key=lambda p: p.name,
        )
        if not files:
            raise PolicyError([Problem(str(path), 1, "no *.yaml or *.yml policy files here")])
    else:
        files = [path]
    sources = []
    for file in files:
        try:
            sources.append((str(file), file.read_bytes()))
        except OSError as exc:
            raise PolicyError([Problem(str(file), 1, f"cannot read: {exc.strerror}")]) from None
    return parse_policy(sources, kinds)


def parse_policy(sources: Iterable[tuple[str, bytes | str]],
                 kinds: Mapping[str, type[Rule]] | None = None) -> Policy:
    """Build a policy from (file name, content) pairs, merged in the order given."""
    sources = [(name, text.encode() if isinstance(text, str) else text)
               for name, text in sources]
    if kinds is None:
        from policies import rules

        kinds = getattr(rules, "KINDS", {})
    builder = _Builder(kinds)
    documents = []
    for name, data in sources:
        doc = read_yaml(name, data, builder.problems)
        if doc is None:
            continue
        if not isinstance(doc, LineDict):
            builder.problem(name, 1, "a policy file is a mapping of purposes, senders, "
                                     "ownership, defaults and rules")
            continue
        documents.append((name, doc))
    # Vocabulary first, from every file, so a rule in an early file may use a
    # purpose or sender that a later file declares.
    for name, doc in documents:
        builder.vocabulary(name, doc)
    builder.check_owners()
    for name, doc in documents:
        builder.rules_of(name, doc)
    if builder.problems:
        raise PolicyError(builder.problems)
    return Policy(
        version=policy_version(sources),
        purposes=MappingProxyType(builder.purposes),
        senders=tuple(builder.senders) if builder.senders else DEFAULT_SENDERS,
        ownership=MappingProxyType(builder.ownership),
        defaults=Defaults(**builder.defaults),
        rules=tuple(builder.rules),
        files=tuple(name for name, _ in sources),
    )


def policy_version(sources: Iterable[tuple[str, bytes]]) -> str:
    """Hash the files' names and content: same files, same version."""
    digest = hashlib.sha256()
    for name, data in sources:
        digest.update(Path(name).name.encode() + b"\0")
        digest.update(len(data).to_bytes(8, "big") + data)
    return f"sha256:{digest.hexdigest()}"


# --- YAML with line numbers -------------------------------------------------------------


class LineDict(dict):
    """A YAML mapping that remembers its own line and the line of each key."""

    line: int = 1
    lines: dict

    def line_of(self, key: Any) -> int:
        return self.lines.get(key, self.line)


class LineList(list):
    """A YAML sequence that remembers its own line and each item's line."""

    line: int = 1
    lines: list

    def line_of(self, index: int) -> int:
        return self.lines[index] if index < len(self.lines) else self.line


class _LineLoader(yaml.SafeLoader):
    """A safe loader whose mappings and sequences carry line numbers."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode):
    data = LineDict()
    data.line = node.start_mark.line + 1
    data.lines = {}
    yield data
    loader.flatten_mapping(node)
    duplicates = []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a name, not a list or mapping", key_node.start_mark
            ) from None
        if key in data.lines:
            duplicates.append((key, key_node.start_mark.line + 1))
        data[key] = loader.construct_object(value_node, deep=True)
        data.lines[key] = key_node.start_mark.line + 1
    loader.duplicates.extend(duplicates)


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode):
    data = LineList()
    data.line = node.start_mark.line + 1
    data.lines = [item.start_mark.line + 1 for item in node.value]
    yield data
    data.extend(loader.construct_object(item, deep=True) for item in node.value)


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def read_yaml(name: str, data: bytes, problems: list[Problem]) -> Any:
    """Parse one YAML document with line numbers; on failure add a problem and return None."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Problem(name, 1, f"not UTF-8 text (byte {exc.start})"))
        return None
    try:
        loader = _LineLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        problems.append(Problem(name, line, f"not valid YAML: character #x{exc.character:04x} "
                                            "is not allowed"))
        return None
    loader.duplicates = []
    try:
        doc = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problems.append(Problem(name, line, f"not valid YAML: {exc.problem or exc.context}"))
        return None
    except yaml.YAMLError as exc:
        problems.append(Problem(name, 1, f"not valid YAML: {exc}"))
        return None
    except RecursionError:
        problems.append(Problem(name, 1, "not valid YAML: nested too deeply"))
        return None
    finally:
        loader.dispose()
    for key, line in loader.duplicates:
        problems.append(Problem(name, line, f"{key}: given twice"))
    return doc


def plain(value: Any, depth: int = 0) -> Any:
    """Strip line bookkeeping: plain dicts and lists for rule options."""
    if depth > 50:
        raise ValueError("nested too deeply")
    if isinstance(value, dict):
        return {k: plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v, depth + 1) for v in value]
    return value


# --- validation -------------------------------------------------------------------------


class _Builder:
    """Collects vocabulary and rules from each file, and every problem on the way."""

    def __init__(self, kinds: Mapping[str, type[Rule]]) -> None:
        self.kinds = kinds
        self.problems: list[Problem] = []
        self.purposes: dict[str, str] = dict(DEFAULT_PURPOSES)
        self.senders: list[str] = []
        self.ownership: dict[str, str] = {}
        self.ownership_lines: dict[str, tuple[str, int]] = {}
        self.defaults: dict[str, Any] = {}
        self.rules: list[Rule] = []
        self.rule_ids: dict[str, tuple[str, int]] = {}

    def problem(self, file: str, line: int, message: str) -> None:
        self.problems.append(Problem(file, line, message))

    # vocabulary ---------------------------------------------------------------------

    def vocabulary(self, name: str, doc: LineDict) -> None:
        for key in doc:
            if key not in TOP_LEVEL_KEYS:
                self.problem(name, doc.line_of(key),
                             f"unknown key {key!r} (expected one of {', '.join(TOP_LEVEL_KEYS)})")
        if "description" in doc and not isinstance(doc["description"], (str, type(None))):
            self.problem(name, doc.line_of("description"), "description: expected text")
        self._purposes(name, doc)
        self._senders(name, doc)
        self._defaults(name, doc)
        if "ownership" in doc:
            self._ownership_raw(name, doc)

    def _purposes(self, name: str, doc: LineDict) -> None:
        purposes = doc.get("purposes")
        if purposes is None:
            return
        if not isinstance(purposes, LineDict):
            self.problem(name, doc.line_of("purposes"),
                         "purposes: expected a mapping of purpose name to category")
            return
        for purpose, category in purposes.items():
            line = purposes.line_of(purpose)
            if not isinstance(purpose, str) or not _RULE_ID.match(purpose):
                self.problem(name, line, f"purposes: {purpose!r} is not a purpose name "
                                         "(lower case letters, digits, _ and -)")
                continue
            if category not in CATEGORIES:
                self.problem(name, line, f"purposes.{purpose}: unknown category {category!r} "
                                         f"(expected one of {', '.join(CATEGORIES)})")
                continue
            known = self.purposes.get(purpose)
            if known is not None and known != category:
                self.problem(name, line, f"purposes.{purpose}: already in category {known!r}; "
                                         "a purpose has exactly one category")
                continue
            self.purposes[purpose] = category

    def _senders(self, name: str, doc: LineDict) -> None:
        senders = doc.get("senders")
        if senders is None:
            return
        if not isinstance(senders, LineList):
            self.problem(name, doc.line_of("senders"),
                         'senders: expected a list of units such as oem, sales, "dealer:*"')
            return
        for i, sender in enumerate(senders):
            if not isinstance(sender, str) or not _SENDER.match(sender):
                self.problem(name, senders.line_of(i),
                             f"senders: {sender!r} is not a unit name or pattern")
            elif sender not in self.senders:
                self.senders.append(sender)

    def _defaults(self, name: str, doc: LineDict) -> None:
        defaults = doc.get("defaults")
        if defaults is None:
            return
        if not isinstance(defaults, LineDict):
            self.problem(name, doc.line_of("defaults"),
                         "defaults: expected a mapping of timezone, region, unknown_recipient")
            return
        for key, value in defaults.items():
            line = defaults.line_of(key)
            if key == "timezone":
                try:
                    if not isinstance(value, str) or not value:
                        raise ValueError
                    ZoneInfo(value)
                except (ValueError, ZoneInfoNotFoundError, OSError):
                    self.problem(name, line, f"defaults.timezone: unknown time zone {value!r} "
                                             "(write e.g. Europe/Berlin)")
                    continue
            elif key == "region":
                if value not in phonenumbers.SUPPORTED_REGIONS:
                    self.problem(name, line, f"defaults.region: unknown region {value!r} "
                                             "(write a two-letter country code such as DE)")
                    continue
            elif key == "unknown_recipient":
                if value not in UNKNOWN_RECIPIENT_EFFECTS:
                    self.problem(name, line, f"defaults.unknown_recipient: expected one of "
                                             f"{', '.join(UNKNOWN_RECIPIENT_EFFECTS)}, "
                                             f"got {value!r}")
                    continue
            else:
                self.problem(name, line, f"defaults: unknown key {key!r} (expected timezone, "
                                         "region, unknown_recipient)")
                continue
            self.defaults[key] = value

    def _ownership_raw(self, name: str, doc: LineDict) -> None:
        ownership = doc["ownership"]
        if not isinstance(ownership, LineDict):
            self.problem(name, doc.line_of("ownership"),
                         "ownership: expected a mapping of stage to owner")
            return
        for stage, owner in ownership.items():
            line = ownership.line_of(stage)
            if stage not in STAGES:
                self.problem(name, line, f"ownership: unknown stage {stage!r} "
                                         f"(expected one of {', '.join(STAGES)})")
            elif not isinstance(owner, str) or not owner:
                self.problem(name, line, f"ownership.{stage}: expected a sender unit or "
                                         f"{' / '.join(OWNER_REFERENCES)}")
            else:
                self.ownership[stage] = owner
                self.ownership_lines[stage] = (name, line)

    # rules ------------------------------------------------------------------------------

    def rules_of(self, name: str, doc: LineDict) -> None:
        rules = doc.get("rules")
        if rules is None:
            return
        if not isinstance(rules, LineList):
            self.problem(name, doc.line_of("rules"), "rules: expected a list of rules")
            return
        for i, raw in enumerate(rules):
            if not isinstance(raw, LineDict):
                self.problem(name, rules.line_of(i), "rules: each rule is a mapping with an "
                                                     "id and a kind")
                continue
            rule = self._rule(name, raw)
            if rule is not None:
                self.rules.append(rule)

    def check_owners(self) -> None:
        senders = self.senders or list(DEFAULT_SENDERS)
        for stage, owner in self.ownership.items():
            if owner in OWNER_REFERENCES or _known_sender(owner, senders):
                continue
            file, line = self.ownership_lines[stage]
            self.problem(file, line, f"ownership.{stage}: unknown sender {owner!r} "
                                     f"(declare it under senders, or use "
                                     f"{' / '.join(OWNER_REFERENCES)})")

    def _rule(self, name: str, raw: LineDict) -> Rule | None:
        before = len(self.problems)

        def bad(key: str | None, message: str) -> None:
            self.problem(name, raw.line_of(key) if key is not None else raw.line, message)

        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not _RULE_ID.match(rule_id):
            bad("id" if "id" in raw else None,
                "rule: every rule needs an id (lower case letters, digits, -, _)"
                if rule_id is None else f"rule: {rule_id!r} is not a usable id")
            label = f"rule at line {raw.line}"
        else:
            label = f"rule {rule_id}"
            if rule_id in self.rule_ids:
                file, line = self.rule_ids[rule_id]
                bad("id", f"{label}: id already used at {file}:{line}")
            else:
                self.rule_ids[rule_id] = (name, raw.line_of("id"))

        kind_name = raw.get("kind")
        cls = self.kinds.get(kind_name) if isinstance(kind_name, str) else None
        if cls is None:
            bad("kind" if "kind" in raw else None,
                f"{label}: needs a kind" if kind_name is None else
                f"{label}: unknown kind {kind_name!r} "
                f"(expected one of {', '.join(sorted(self.kinds))})")

        kwargs: dict[str, Any] = {"id": rule_id}
        mode = raw.get("mode", "enforce")
        if mode not in MODES:
            bad("mode", f"{label}: mode must be enforce or monitor, got {mode!r}")
        kwargs["mode"] = mode
        message = raw.get("message")
        if message is not None and not isinstance(message, str):
            bad("message", f"{label}: message must be text")
        kwargs["message"] = message
        kwargs["scope"] = self._scope(name, raw, label)
        when = raw.get("when")
        if when is not None:
            if not isinstance(when, str):
                bad("when", f"{label}: when: expected a CEL expression as text")
            else:
                try:
                    kwargs["when"] = Condition(when)
                except ValueError as exc:
                    bad("when", f"{label}: when: {exc}")

        if cls is not None:
            effect = raw.get("effect")
            if effect is None:
                effect = cls.default_effect
            elif effect not in cls.allowed_effects:
                bad("effect", f"{label}: effect {effect!r} is not possible for kind "
                              f"{cls.kind} (expected one of {', '.join(cls.allowed_effects)})")
            kwargs["effect"] = effect
            options = cls.option_fields()
            for key in raw:
                if key in COMMON_RULE_KEYS:
                    continue
                if key not in options:
                    known = sorted(set(options) | set(COMMON_RULE_KEYS))
                    bad(key, f"{label}: unknown key {key!r} for kind {cls.kind} "
                             f"(expected one of {', '.join(known)})")
                    continue
                try:
                    kwargs[key] = convert(key, options[key], plain(raw[key]))
                except ConfigError as exc:
                    bad(key, f"{label}: {exc.message}")
                except ValueError as exc:
                    bad(key, f"{label}: {key}: {exc}")
            for key in sorted(cls.required_options() - set(raw)):
                bad(None, f"{label}: {key} is required for kind {cls.kind}")

        if len(self.problems) > before or cls is None:
            return None
        try:
            rule = cls(**kwargs)
        except ConfigError as exc:
            key = exc.key if exc.key in raw else None
            bad(key, f"{label}: {exc.message}")
            return None
        # A kind's own checks may fail in ways it did not foresee; the admin
        # still gets a line to look at, never a traceback.
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            bad(None, f"{label}: {exc}")
            return None
        for key, message in self._unknown_references(rule):
            bad(key, f"{label}: {message}")
        return rule

    def _unknown_references(self, rule: Rule) -> Iterable[tuple[str, str]]:
        """Find purposes, senders and owners named in a rule's options that the policy lacks."""
        options = rule.option_fields()
        senders = self.senders or DEFAULT_SENDERS
        if "exempt" in options:
            for purpose in rule.exempt:
                if purpose not in self.purposes:
                    yield "exempt", f"exempt: unknown purpose {purpose!r}"
        if "always_allowed" in options:
            for sender in rule.always_allowed:
                if not _known_sender(sender, senders):
                    yield "always_allowed", f"always_allowed: unknown sender {sender!r}"
        if "requires" in options:
            for need in rule.requires:
                purpose = getattr(need, "purpose", None)
                if isinstance(purpose, str) and purpose not in self.purposes:
                    yield "requires", f"requires: unknown purpose {purpose!r}"
        owners = []
        if "owners" in options:
            owners += [owner for _, owner in (rule.owners or ())]
        if "reroute_to_owner" in options and rule.reroute_to_owner:
            owners.append(rule.reroute_to_owner)
        for owner in owners:
            if owner not in OWNER_REFERENCES and not _known_sender(owner, senders):
                key = "owners" if "owners" in options else "reroute_to_owner"
                yield key, f"{key}: unknown sender {owner!r}"

    def _scope(self, name: str, raw: LineDict, label: str) -> Scope:
        parts: dict[str, Any] = {}
        for key in SCOPE_KEYS:
            if key not in raw:
                continue
            line = raw.line_of(key)
            value = raw[key]
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                self.problem(name, line, f"{label}: {key}: expected a list of names")
                continue
            for v in value:
                unknown = self._unknown_scope_name(key, v)
                if unknown:
                    self.problem(name, line, f"{label}: {key}: {unknown}")
            parts[key] = tuple(value) if key == "senders" else frozenset(value)
        return Scope(**parts)

    def _unknown_scope_name(self, key: str, value: str) -> str | None:
        if key == "purposes" and value not in self.purposes:
            return f"unknown purpose {value!r} (declare it under purposes)"
        if key == "categories" and value not in CATEGORIES:
            return f"unknown category {value!r} (expected one of {', '.join(CATEGORIES)})"
        if key == "channels" and value not in CHANNELS:
            return f"unknown channel {value!r} (expected one of {', '.join(CHANNELS)})"
        if key == "senders" and not _known_sender(value, self.senders or DEFAULT_SENDERS):
            return f"unknown sender {value!r} (declare it under senders)"
        return None


def _known_sender(name: str, senders: Iterable[str]) -> bool:
    """Say whether a name (or pattern) used in a rule covers a declared unit or pattern."""
    return any(name == s or fnmatch.fnmatchcase(name, s) or fnmatch.fnmatchcase(s, name)
               for s in senders)


def _durations(rule: Rule) -> list[timedelta]:
    """Every window a rule was configured with, however deeply its options nest them."""
    found: list[timedelta] = []

    def walk(value: Any, depth: int) -> None:
        if depth > 5:
            return
        if isinstance(value, timedelta):
            found.append(value)
        elif isinstance(value, Mapping):
            for v in value.values():
                walk(v, depth + 1)
        elif isinstance(value, (list, tuple, frozenset, set)):
            for v in value:
                walk(v, depth + 1)
        elif hasattr(value, "__dataclass_fields__") and not isinstance(value, type):
            for name in value.__dataclass_fields__:
                walk(getattr(value, name, None), depth + 1)

    for name in rule.option_fields():
        walk(getattr(rule, name, None), 0)
    return found

