"""Read a recordings folder's manifest.csv into CallInput records (docs/CONTRACTS.md, "Input").

The manifest as a whole is refused (ManifestError) only when nothing in it can be trusted: no
file, not UTF-8, no header, a required or repeated column name. A wrong row (missing file,
bad date, duplicate call_id, path escaping the folder, unknown channel layout) becomes a
Failure with its reason and manifest line; the other rows go on.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TypeVar

from pipeline.records import CallInput, ChannelLayout, Failure, KnownFields

REQUIRED = ("path", "call_id", "agent_id", "recorded_at")
KNOWN = (*REQUIRED, "agent_hired_at", "channels", "topic")
LAYOUTS: tuple[ChannelLayout, ...] = ("agent_left", "agent_right", "mono")
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}


class ManifestError(ValueError):
    """The manifest as a whole is unusable (missing, unreadable, no required columns)."""


def parse_datetime(value: str) -> datetime:
    """ISO 8601 date or datetime; a timezone, if given, is dropped after converting to local."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(tz=None).replace(tzinfo=None)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 shifted out of range
        raise ValueError(f"not an ISO 8601 date or datetime: {value!r}") from None
    return parsed


def parse_date(value: str) -> date:
    return parse_datetime(value).date()


def _check_encoding(manifest: Path) -> None:
    """Refuse a file that is not UTF-8 before any row counts, reading it in blocks."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    line = 1
    try:
        with manifest.open("rb") as f:
            while block := f.read(1 << 20):
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as e:
                    line += block[: e.start].count(b"\n")
                    raise ManifestError(
                        f"{manifest}: not UTF-8 (line {line}, byte 0x{block[e.start]:02x}); save "
                        "it as UTF-8 CSV (Excel: CSV UTF-8)"
                    ) from None
                line += block.count(b"\n")
            decoder.decode(b"", final=True)
    except OSError as e:
        raise ManifestError(f"{manifest}: cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ManifestError(f"{manifest}: not UTF-8 (truncated character at the end)") from None


class _Prefix(io.RawIOBase):
    """The first `limit` bytes of a file: rows appended while a run reads the manifest wait for
    the next run instead of being read half-written."""

    def __init__(self, raw: io.RawIOBase, limit: int) -> None:
        self.raw, self.left = raw, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001  (a writable buffer, as RawIOBase passes)
        if self.left <= 0:
            return 0
        n = self.raw.readinto(memoryview(buffer)[: self.left]) or 0
        self.left -= n
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


def _open_text(manifest: Path, limit: int | None) -> io.TextIOBase:
    raw = manifest.open("rb", buffering=0)
    if limit is not None:
        raw = _Prefix(raw, limit)
    # -sig: the BOM Excel writes; newline="": the csv module reads CRLF and LF itself
    return io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8-sig", newline="")


def _rows(
    manifest: Path, limit: int | None = None
) -> Iterator[tuple[int, dict[str | None, str | None]]]:
    """(line, row) pairs, streamed; line is where the row ends in the file (blank lines are
    skipped and a quoted field may span lines, so counting rows would point at the wrong line).
    `limit`: read only the first bytes (the manifest as the run first saw it)."""
    with _open_text(manifest, limit) as f:
        reader = csv.DictReader(f)  # csv reads CRLF and LF alike
        try:
            header = reader.fieldnames
            if not header:
                raise ManifestError(f"{manifest}: empty file, expected a header row")
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                raise ManifestError(
                    f"{manifest}: missing required column(s): {', '.join(missing)} "
                    f"(header: {', '.join(header)})"
                )
            repeated = sorted({c for c in header if header.count(c) > 1})
            if repeated:
                raise ManifestError(f"{manifest}: column(s) named twice: {', '.join(repeated)}")
            for row in reader:
                yield reader.line_num, row
        except csv.Error as e:
            raise ManifestError(
                f"{manifest}: not a readable CSV (line {reader.line_num}): {e}"
            ) from None


@dataclass(frozen=True)
class ManifestChunk:
    calls: list[CallInput]
    failures: list[Failure]  # rejected rows of this stretch of the manifest


def _manifest_path(folder: Path) -> Path:
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        raise ManifestError(f"no manifest.csv in {folder}")
    return manifest


def manifest_path(folder: str | Path) -> Path:
    """The folder's manifest.csv; ManifestError when there is none."""
    return _manifest_path(Path(folder).resolve())


def check_manifest(folder: str | Path, limit: int | None = None) -> int:
    """Read the whole manifest once without keeping it: raise ManifestError if it is unusable
    as a whole, else return its number of rows (for progress). Rows are judged later."""
    manifest = _manifest_path(Path(folder).resolve())
    _check_encoding(manifest)
    return sum(1 for _ in _rows(manifest, limit))


def iter_manifest(
    folder: str | Path, chunk_size: int, limit: int | None = None
) -> Iterator[ManifestChunk]:
    """The manifest's rows as CallInput records and Failures, `chunk_size` rows at a time.

    Memory stays bounded whatever the folder size: only the call_ids seen so far are kept
    (a repeated id is refused wherever it appears). Call check_manifest first: a file that is
    unusable as a whole then fails before any chunk is handed out.
    """
    folder = Path(folder).resolve()
    manifest = _manifest_path(folder)
    calls: list[CallInput] = []
    failures: list[Failure] = []
    first_line: dict[str, int] = {}  # call_id -> line of its first row, good or bad
    for n_rows, (line, row) in enumerate(_rows(manifest, limit), start=1):
        values = {k: (v or "").strip() for k, v in row.items() if k}  # not None (extras), not ""
        call_id, rel = values.get("call_id") or None, values.get("path") or None
        if call_id is not None and call_id in first_line:
            # The id belongs to its first row: this row gets no `calls` row of its own.
            reason = f"duplicate call_id {call_id!r} (first on line {first_line[call_id]})"
            failures.append(Failure("manifest", reason, call_id, rel, line))
        else:
            if call_id is not None:
                first_line[call_id] = line
            try:
                calls.append(_parse_row(folder, values))
            except ValueError as e:
                known = _known_fields(folder, values) if call_id is not None else None
                failures.append(Failure("manifest", str(e), call_id, rel, line, known))
        if n_rows % chunk_size == 0:
            yield ManifestChunk(calls, failures)
            calls, failures = [], []
    if calls or failures:
        yield ManifestChunk(calls, failures)


def read_manifest(folder: str | Path) -> tuple[list[CallInput], list[Failure]]:
    """The whole manifest at once (small folders, tests); runs stream it with iter_manifest."""
    check_manifest(folder)
    calls: list[CallInput] = []
    failures: list[Failure] = []
    for chunk in iter_manifest(folder, chunk_size=1024):
        calls += chunk.calls
        failures += chunk.failures
    return calls, failures


def _check_path(folder: Path, rel: str) -> Path:
    """The audio file `rel` names, which must lie inside `folder` (after following links)."""
    if "\0" in rel:
        raise ValueError("path contains a NUL character")
    if Path(rel).is_absolute() or rel.startswith("\\"):
        raise ValueError(f"path {rel!r} is absolute; paths are relative to the recordings folder")
    try:
        audio = (folder / rel).resolve()
        inside = audio.is_relative_to(folder)
        if inside and not audio.exists():
            raise ValueError(f"audio file not found: {rel!r}")
        if inside and audio.is_dir():
            raise ValueError(f"path {rel!r} is a directory, not an audio file")
    except (OSError, RuntimeError) as e:  # name too long, symlink loop, permissions
        raise ValueError(f"path {rel!r} cannot be resolved: {e}") from None
    if not inside and Path(os.path.normpath(folder / rel)).is_relative_to(folder):
        raise ValueError(f"path {rel!r} leads outside the recordings folder through a link")
    if not inside:
        raise ValueError(f"path {rel!r} escapes the recordings folder")
    if audio.suffix.lower() not in AUDIO_SUFFIXES:
        raise ValueError(f"unsupported audio type {audio.suffix!r} (wav, flac, ogg, mp3)")
    return audio


def _layout(value: str) -> ChannelLayout | None:
    layout = value.lower() or None
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"channels must be one of {', '.join(LAYOUTS)}, got {value!r}")
    return layout  # type: ignore[return-value]


def _parse_row(folder: Path, values: dict[str, str]) -> CallInput:
    for column in REQUIRED:
        if not values.get(column):
            raise ValueError(f"empty required field {column!r}")
    rel = values["path"]
    audio = _check_path(folder, rel)
    try:
        recorded_at = parse_datetime(values["recorded_at"])
    except ValueError as e:
        raise ValueError(f"recorded_at: {e}") from None
    hired_at = None
    if values.get("agent_hired_at"):
        try:
            hired_at = parse_date(values["agent_hired_at"])
        except ValueError as e:
            raise ValueError(f"agent_hired_at: {e}") from None
    return CallInput(
        call_id=values["call_id"],
        agent_id=values["agent_id"],
        path=str(audio),
        rel_path=rel,
        folder=str(folder),
        recorded_at=recorded_at,
        agent_hired_at=hired_at,
        channels=_layout(values.get("channels", "")),
        topic=values.get("topic") or None,
        attributes={k: v for k, v in values.items() if k not in KNOWN},
    )


T = TypeVar("T")


def _attempt(parse: Callable[[str], T], value: str | None) -> T | None:
    try:
        return parse(value) if value else None
    except ValueError:
        return None


def _known_fields(folder: Path, values: dict[str, str]) -> KnownFields:
    """Whatever a rejected row's fields still tell, each on its own (a bad date loses only
    the date), for the call's `calls` row with status 'failed'."""
    return KnownFields(
        folder=str(folder),
        agent_id=values.get("agent_id") or None,
        recorded_at=_attempt(parse_datetime, values.get("recorded_at")),
        agent_hired_at=_attempt(parse_date, values.get("agent_hired_at")),
        channels=_attempt(_layout, values.get("channels")),
        topic=values.get("topic") or None,
        attributes={k: v for k, v in values.items() if k not in KNOWN},
    )
