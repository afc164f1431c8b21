"""The typed rows of coaching events and their outcomes; the store generates the
`coaching_events` and `coaching_results` tables from them (pipeline/store/schema.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

EventSource = Literal["command", "session"]  # `calibrate session`, or an imported session


@dataclass(frozen=True)
class CoachingEvent:
    agent_id: str
    event_date: date
    source: EventSource
    session: str | None  # the calibration session it came from (or was recorded for)
    recorded_at: datetime


@dataclass(frozen=True)
class CoachingResult:
    """One agent, event and figure (docs/METRICS.md, "Coaching outcomes")."""

    agent_id: str
    event_date: date
    figure: str
    direction: int  # +1: a rise is a concern (pipeline/data/metrics.toml), -1: a fall is
    before_first: date  # windows, first and last day inclusive
    before_last: date
    after_first: date
    after_last: date
    n_early: int
    early_mean: float | None  # the agent's early-career baseline of the figure
    n_before: int
    before_mean: float | None
    n_after: int
    after_mean: float | None
    comparison_agents: int  # uncoached agents with calls in both windows
    confidence: float
    min_calls: int
    verdict: str  # improved | no clear change | worse | too few calls yet
    change: float | None = None  # after - before, the coached agent
    comparison_change: float | None = None  # after - before, the comparison agents
    did: float | None = None  # change - comparison_change
    ci_low: float | None = None  # bootstrap interval of did over calls
    ci_high: float | None = None
    effect_size: float | None = None  # did / pooled SD of the agent's before and after calls
