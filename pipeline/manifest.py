"""Read a recordings folder's manifest.csv into CallInput records (docs/CONTRACTS.md, "Input").

A wrong row (missing file, bad date, duplicate call_id, path escaping the folder, unknown
channel layout) becomes a Failure with its reason; the other rows go on.
"""

from __future__ import annotations

import csv
from datetime import date, datetime
from pathlib import Path

from pipeline.records import CallInput, ChannelLayout, Failure

REQUIRED = ("path", "call_id", "agent_id", "recorded_at")
KNOWN = (*REQUIRED, "agent_hired_at", "channels", "topic")
LAYOUTS: tuple[ChannelLayout, ...] = ("agent_left", "agent_right", "mono")
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}


class ManifestError(ValueError):
    """The manifest as a whole is unusable (missing, unreadable, no required columns)."""


def parse_datetime(value: str) -> datetime:
    """ISO 8601 date or datetime; a timezone, if given, is dropped after converting to UTC."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO 8601 date or datetime: {value!r}") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(tz=None).replace(tzinfo=None)
    return parsed


def parse_date(value: str) -> date:
    return parse_datetime(value).date()


def read_manifest(folder: str | Path) -> tuple[list[CallInput], list[Failure]]:
    folder = Path(folder).resolve()
    manifest = folder / "manifest.csv"
    if not manifest.is_file():
        raise ManifestError(f"no manifest.csv in {folder}")
    try:
        with open(manifest, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
            header = rows[0].keys() if rows else []
    except (UnicodeDecodeError, csv.Error) as e:
        raise ManifestError(f"{manifest}: cannot read as UTF-8 CSV: {e}") from e
    missing = [c for c in REQUIRED if c not in header]
    if rows and missing:
        raise ManifestError(f"{manifest}: missing required column(s): {', '.join(missing)}")

    calls: list[CallInput] = []
    failures: list[Failure] = []
    seen: set[str] = set()
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        try:
            call = _parse_row(folder, row)
        except ValueError as e:
            failures.append(
                Failure(
                    "manifest",
                    str(e),
                    (row.get("call_id") or "").strip() or None,
                    (row.get("path") or "").strip() or None,
                    line,
                )
            )
            continue
        if call.call_id in seen:
            failures.append(
                Failure(
                    "manifest",
                    f"duplicate call_id {call.call_id!r}",
                    call.call_id,
                    call.rel_path,
                    line,
                )
            )
            continue
        seen.add(call.call_id)
        calls.append(call)
    return calls, failures


def _parse_row(folder: Path, row: dict[str, str | None]) -> CallInput:
    values = {k: (v or "").strip() for k, v in row.items() if k is not None}
    for column in REQUIRED:
        if not values.get(column):
            raise ValueError(f"empty required field {column!r}")
    rel = values["path"]
    audio = (folder / rel).resolve()
    if not audio.is_relative_to(folder):
        raise ValueError(f"path {rel!r} escapes the recordings folder")
    if not audio.is_file():
        raise ValueError(f"audio file not found: {rel!r}")
    if audio.suffix.lower() not in AUDIO_SUFFIXES:
        raise ValueError(f"unsupported audio type {audio.suffix!r} (wav, flac, ogg, mp3)")
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
    layout = values.get("channels") or None
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"channels must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    return CallInput(
        call_id=values["call_id"],
        agent_id=values["agent_id"],
        path=str(audio),
        rel_path=rel,
        folder=str(folder),
        recorded_at=recorded_at,
        agent_hired_at=hired_at,
        channels=layout,  # type: ignore[arg-type]
        topic=values.get("topic") or None,
        attributes={k: v for k, v in values.items() if k not in KNOWN},
    )
