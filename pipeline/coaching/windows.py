"""A coaching event's windows (docs/METRICS.md, "Coaching outcomes"), on calendar dates.

  before   the `days` days before the event day
  after    the `days` days after the event day, ending the day before the agent's next event
The event day itself belongs to neither: the session happened some time that day.
Comparison agents are those with no event of their own from the first day before to the last
day after: coached at the same time, they would not show what happens without coaching.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd


@dataclass(frozen=True)
class EventWindows:
    agent_id: str
    event_date: date
    before_first: date  # all four inclusive
    before_last: date
    after_first: date
    after_last: date  # before after_first when the next event is the day after this one


def event_windows(events: Iterable[tuple[str, date]], days: int) -> list[EventWindows]:
    """The windows of every (agent_id, event_date), sorted by agent and date."""
    by_agent: dict[str, list[date]] = {}
    for agent_id, day in sorted(set(events)):
        by_agent.setdefault(agent_id, []).append(day)
    out = []
    for agent_id, days_of in by_agent.items():
        for n, day in enumerate(days_of):
            last = day + timedelta(days=days)
            if n + 1 < len(days_of):
                last = min(last, days_of[n + 1] - timedelta(days=1))
            out.append(
                EventWindows(
                    agent_id,
                    day,
                    before_first=day - timedelta(days=days),
                    before_last=day - timedelta(days=1),
                    after_first=day + timedelta(days=1),
                    after_last=last,
                )
            )
    return out


def in_days(days: pd.Series, first: date, last: date) -> pd.Series:
    """Which of these call dates fall from `first` to `last`, both inclusive."""
    return (days >= first) & (days <= last)


def comparison_agents(
    w: EventWindows, agents: Sequence[str], events_by_agent: Mapping[str, Sequence[date]]
) -> list[str]:
    """The agents not coached from w.before_first to w.after_last (w's own agent excluded)."""
    return [
        a
        for a in agents
        if a != w.agent_id
        and not any(w.before_first <= d <= w.after_last for d in events_by_agent.get(a, ()))
    ]
