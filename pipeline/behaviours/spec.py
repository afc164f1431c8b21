"""The service-behaviour patterns (pipeline/data/behaviours.toml), read once into frozen records.

The file's syntax is documented at its top. Loading refuses, with the file and line number,
anything the detector could not apply as written: an unknown key or section, a regular
expression that does not compile, a pattern that names an unknown behaviour, kind or context.
A mistake in a pattern file should stop a run at start-up, not silently count nothing.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError


class BehaviourSpecError(ConfigError):
    """A behaviour pattern file is wrong; the message starts with `file:line:`. A ConfigError:
    the run stops at start-up with the settings errors' exit status and one error line."""


@dataclass(frozen=True)
class Matcher:
    """Phrases and regular expressions over one turn's text, with exemptions: a hit that overlaps
    an exempt phrase or exempt expression is not a hit (不可能 inside 不可能影响您的征信)."""

    phrases: tuple[str, ...] = ()
    regexes: tuple[re.Pattern[str], ...] = ()
    exempt: tuple[str, ...] = ()
    exempt_regexes: tuple[re.Pattern[str], ...] = ()
    fuzzy: bool = True  # phrases of `fuzzy_min_chars` or more may have one substituted character


@dataclass(frozen=True)
class Context:
    """A kind of customer turn a pattern can require just before the agent's turn."""

    name: str  # complaint | correction | request
    matcher: Matcher


@dataclass(frozen=True)
class Behaviour:
    name: str
    label: str  # what QA leads call it
    kinds: tuple[str, ...]  # in priority order: when several fire in one turn, the first wins


@dataclass(frozen=True)
class Pattern:
    behaviour: str
    kind: str
    matcher: Matcher
    after: str | None  # a Context name the customer turn before must match; None: any turn
    line: int  # where the pattern starts in its file, for messages


@dataclass(frozen=True)
class BehaviourSpec:
    behaviours: tuple[Behaviour, ...]
    contexts: tuple[Context, ...]
    patterns: tuple[Pattern, ...]
    fuzzy_min_chars: int
    source: str

    def behaviour(self, name: str) -> Behaviour:
        return next(b for b in self.behaviours if b.name == name)

    def context(self, name: str) -> Context:
        return next(c for c in self.contexts if c.name == name)


CONTEXTS = ("complaint", "correction", "request")
_MATCHER_KEYS = {"phrases", "regex", "exempt", "exempt_regex", "fuzzy", "note"}
_PATTERN_KEYS = _MATCHER_KEYS | {"behaviour", "kind", "after"}
_BEHAVIOUR_KEYS = {"label", "kinds"}
_SETTINGS_KEYS = {"fuzzy_min_chars"}
_SECTIONS = {"settings", "context", "behaviour", "pattern"}
_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\"]+)\s*\]\]?")


class _Lines:
    """Line numbers for a TOML file's tables and keys (tomllib reports none)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        # (line number, header) of every [table] / [[array]] header, in file order
        self.headers = [
            (i + 1, m.group(1).replace('"', ""))
            for i, line in enumerate(self.lines)
            if (m := _HEADER.match(line))
        ]

    def table(self, header: str, nth: int = 0) -> tuple[int, int]:
        """First and last line of the nth table with this header (1-based, inclusive)."""
        found = [i for i, (_, h) in enumerate(self.headers) if h == header]
        if nth >= len(found):
            return 1, len(self.lines)
        k = found[nth]
        first = self.headers[k][0]
        last = self.headers[k + 1][0] - 1 if k + 1 < len(self.headers) else len(self.lines)
        return first, last

    def find(self, span: tuple[int, int], *needles: str) -> int:
        """The first line in span holding the first needle found; the span's start if none."""
        for needle in needles:
            for n in range(span[0], span[1] + 1):
                if needle and needle in self.lines[n - 1]:
                    return n
        return span[0]


# Whisper writes 你 for 您 and back (on the sample calls 15 of 153 spoken 您 came out as 你), and
# an impatient agent drops 您 for 你 anyway: to the matcher they are one character, in the
# patterns as in the transcript (same length, so spans into the stored text stay right).
_FOLD = str.maketrans({"你": "您"})


def fold(text: str) -> str:
    """The text as the matcher compares it: 你 read as 您."""
    return text.translate(_FOLD)


def _strings(path: Path, line: int, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BehaviourSpecError(f"{path}:{line}: {key} must be a list of non-empty strings")
    return tuple(value)


def _regexes(
    path: Path, lines: _Lines, span: tuple[int, int], key: str, value: Any
) -> tuple[re.Pattern[str], ...]:
    out = []
    for text in _strings(path, lines.find(span, f"{key} ="), key, value):
        try:
            out.append(re.compile(fold(text)))
        except re.error as e:
            # the expression as written: a literal '...' string, or a basic "..." one
            quoted = (f"'{text}'", '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
            line = lines.find(span, *quoted, f"{key} =")
            raise BehaviourSpecError(
                f"{path}:{line}: bad regular expression {text!r}: {e}"
            ) from None
    return tuple(out)


def _matcher(path: Path, lines: _Lines, span: tuple[int, int], raw: dict[str, Any]) -> Matcher:
    fuzzy = raw.get("fuzzy", True)
    if not isinstance(fuzzy, bool):
        raise BehaviourSpecError(f"{path}:{lines.find(span, 'fuzzy =')}: fuzzy must be true/false")
    m = Matcher(
        phrases=_strings(path, lines.find(span, "phrases ="), "phrases", raw.get("phrases", [])),
        regexes=_regexes(path, lines, span, "regex", raw.get("regex", [])),
        exempt=_strings(path, lines.find(span, "exempt ="), "exempt", raw.get("exempt", [])),
        exempt_regexes=_regexes(path, lines, span, "exempt_regex", raw.get("exempt_regex", [])),
        fuzzy=fuzzy,
    )
    if not m.phrases and not m.regexes:
        raise BehaviourSpecError(f"{path}:{span[0]}: needs phrases or regex")
    return m


def _check_keys(
    path: Path, lines: _Lines, span: tuple[int, int], raw: Any, known: set[str], what: str
) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BehaviourSpecError(f"{path}:{span[0]}: {what} must be a table")
    for key in raw:
        if key not in known:
            line = lines.find(span, f"{key} =", f"{key}=", key)
            raise BehaviourSpecError(
                f"{path}:{line}: unknown key {key!r} in {what}; known: {', '.join(sorted(known))}"
            )
    return raw


def load_behaviours(path: Path) -> BehaviourSpec:
    """Read and check a behaviour pattern file (syntax: pipeline/data/behaviours.toml)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except FileNotFoundError:
        raise BehaviourSpecError(f"{path}:0: behaviour pattern file not found") from None
    except tomllib.TOMLDecodeError as e:  # its message already names the line
        raise BehaviourSpecError(f"{path}: not valid TOML: {e}") from None
    lines = _Lines(text)
    for section in raw:
        if section not in _SECTIONS:
            line = lines.find((1, len(lines.lines)), f"[{section}", section)
            raise BehaviourSpecError(
                f"{path}:{line}: unknown section [{section}]; known: {', '.join(sorted(_SECTIONS))}"
            )
    settings = _check_keys(
        path, lines, lines.table("settings"), raw.get("settings", {}), _SETTINGS_KEYS, "[settings]"
    )
    fuzzy_min = settings.get("fuzzy_min_chars", 5)
    if not isinstance(fuzzy_min, int) or fuzzy_min < 2:
        line = lines.find(lines.table("settings"), "fuzzy_min_chars")
        raise BehaviourSpecError(f"{path}:{line}: fuzzy_min_chars must be an integer >= 2")

    contexts = []
    for name, sec in raw.get("context", {}).items():
        span = lines.table(f"context.{name}")
        if name not in CONTEXTS:
            raise BehaviourSpecError(
                f"{path}:{span[0]}: unknown context {name!r}; known: {', '.join(CONTEXTS)}"
            )
        sec = _check_keys(path, lines, span, sec, _MATCHER_KEYS, f"[context.{name}]")
        contexts.append(Context(name=name, matcher=_matcher(path, lines, span, sec)))

    behaviours = []
    for name, sec in raw.get("behaviour", {}).items():
        span = lines.table(f"behaviour.{name}")
        sec = _check_keys(path, lines, span, sec, _BEHAVIOUR_KEYS, f"[behaviour.{name}]")
        kinds = _strings(path, lines.find(span, "kinds ="), "kinds", sec.get("kinds"))
        behaviours.append(Behaviour(name=name, label=str(sec.get("label", name)), kinds=kinds))

    patterns = []
    known_contexts = {c.name for c in contexts}
    pattern_list = raw.get("pattern", [])
    if not isinstance(pattern_list, list):
        raise BehaviourSpecError(f"{path}:1: `pattern` must be an array of tables [[pattern]]")
    for i, sec in enumerate(pattern_list):
        span = lines.table("pattern", i)
        sec = _check_keys(path, lines, span, sec, _PATTERN_KEYS, "[[pattern]]")
        behaviour = next((b for b in behaviours if b.name == sec.get("behaviour")), None)
        if behaviour is None:
            raise BehaviourSpecError(
                f"{path}:{lines.find(span, 'behaviour =')}: unknown behaviour "
                f"{sec.get('behaviour')!r}; known: {', '.join(b.name for b in behaviours)}"
            )
        if sec.get("kind") not in behaviour.kinds:
            raise BehaviourSpecError(
                f"{path}:{lines.find(span, 'kind =')}: unknown kind {sec.get('kind')!r} for "
                f"{behaviour.name}; known: {', '.join(behaviour.kinds)}"
            )
        after = sec.get("after")
        if after is not None and after not in known_contexts:
            raise BehaviourSpecError(
                f"{path}:{lines.find(span, 'after =')}: unknown context {after!r}; defined: "
                f"{', '.join(sorted(known_contexts)) or 'none'}"
            )
        patterns.append(
            Pattern(
                behaviour=behaviour.name,
                kind=sec["kind"],
                matcher=_matcher(path, lines, span, sec),
                after=after,
                line=span[0],
            )
        )
    return BehaviourSpec(
        behaviours=tuple(behaviours),
        contexts=tuple(contexts),
        patterns=tuple(patterns),
        fuzzy_min_chars=fuzzy_min,
        source=str(path),
    )
