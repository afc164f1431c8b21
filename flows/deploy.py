"""The nightly deployment of `review_calls`, on a real Prefect server.

Two ways, as Prefect 3 runs flows:
- `serve_nightly` (`callreview serve`): this process registers the deployment and runs its
  scheduled runs itself, until stopped.
- `deploy_nightly` (`callreview deploy`): the deployment goes onto a process work pool; any
  machine that runs `prefect worker start --pool NAME` in this checkout's environment picks its
  runs up. The flow is loaded from this checkout (`flows/review.py:review_calls`).

Both: the cron is read in a named time zone ([schedule] timezone, default the server's); at
most one run at a time (deployment concurrency limit 1, ENQUEUE: a run fired while another
runs waits for it, then finds only what is still new), so there is never a second writer; the
parameters are plain JSON values, shown and editable in the UI. A temporary (ephemeral) server
never fires schedules, so both refuse to start without PREFECT_API_URL.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.schedules import Cron, Schedule

from pipeline.config import ScheduleSettings

DEPLOYMENT = "nightly"
ENTRYPOINT = "flows/review.py:review_calls"
REPO_DIR = Path(__file__).resolve().parents[1]
DESCRIPTION = "Nightly review of new call recordings (callreview)."


class NoServerError(RuntimeError):
    """Schedules need a real Prefect server."""


def require_server() -> str:
    from prefect.settings import PREFECT_API_URL

    url = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if not url:
        raise NoServerError(
            "no Prefect server configured: schedules do not fire on a temporary server. "
            "Run `prefect server start` in another terminal, then "
            "`export PREFECT_API_URL=http://127.0.0.1:4200/api` and retry."
        )
    return url


def one_at_a_time() -> ConcurrencyLimitConfig:
    return ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


def nightly_schedule(schedule: ScheduleSettings) -> Schedule:
    return Cron(schedule.cron, timezone=schedule.timezone)


def serve_nightly(parameters: dict[str, Any], schedule: ScheduleSettings) -> None:
    """Register the deployment and run its scheduled runs in this process, until stopped."""
    require_server()
    from flows.review import review_calls

    review_calls.serve(
        name=DEPLOYMENT,
        schedules=[nightly_schedule(schedule)],
        parameters=parameters,
        global_limit=one_at_a_time(),
        limit=1,
        description=DESCRIPTION,
    )


def ensure_process_pool(pool: str) -> bool:
    """Create the process work pool when it does not exist; True when it was created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            found = client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
            return True
    if found.type != "process":
        raise ValueError(f"work pool {pool!r} is of type {found.type!r}, not 'process'")
    return False


def deploy_nightly(
    parameters: dict[str, Any], schedule: ScheduleSettings, pool: str, paused: bool = False
) -> UUID:
    """Make (or update) the deployment on a process work pool; returns its id."""
    require_server()
    ensure_process_pool(pool)
    from flows.review import review_calls

    source = review_calls.from_source(source=str(REPO_DIR), entrypoint=ENTRYPOINT)
    return source.deploy(
        name=DEPLOYMENT,
        work_pool_name=pool,
        schedules=[nightly_schedule(schedule)],
        parameters=parameters,
        concurrency_limit=one_at_a_time(),
        description=DESCRIPTION,
        paused=paused,
        build=False,
        push=False,
        print_next_steps=False,
    )


def later_due_run() -> str | None:
    """Inside a flow run: when this is a scheduled run and a later scheduled run of the same
    deployment is also due already (nights were missed while the server or the worker was
    down), the expected start of that later run; it does the work, so a missed night is run
    once, not once per missed night. None otherwise (manual runs, runs without deployment)."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    me = context.flow_run if context else None
    if me is None or me.deployment_id is None or not me.auto_scheduled:
        return None
    if me.expected_start_time is None:
        return None
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                deployment_id=FlowRunFilterDeploymentId(any_=[me.deployment_id]),
                state=FlowRunFilterState(
                    # A later run counts whether it waits, runs or is done already: the worker
                    # may take the missed runs in any order.
                    type=FlowRunFilterStateType(
                        any_=[
                            StateType.SCHEDULED,
                            StateType.PENDING,
                            StateType.RUNNING,
                            StateType.COMPLETED,
                        ]
                    )
                ),
                expected_start_time=FlowRunFilterExpectedStartTime(
                    after_=me.expected_start_time, before_=datetime.now(UTC)
                ),
            )
        )
    later = [
        r.expected_start_time
        for r in runs
        if r.id != me.id and r.auto_scheduled and r.expected_start_time > me.expected_start_time
    ]
    return max(later).isoformat() if later else None
