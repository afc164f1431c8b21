"""Nightly deployment of `review_calls`.

`flow.serve(cron=...)` needs a real Prefect API: a temporary (ephemeral) server never fires
schedules. Start one with `prefect server start` and set PREFECT_API_URL, then run
`callreview serve FOLDER --db FILE`.
"""

from __future__ import annotations

import os

from flows.review import review_calls


def serve_nightly(
    folder: str, db: str, cron: str = "0 2 * * *", config_file: str | None = None
) -> None:
    if not os.environ.get("PREFECT_API_URL"):
        from prefect.settings import PREFECT_API_URL

        if not PREFECT_API_URL.value():
            raise RuntimeError(
                "no Prefect server configured: schedules do not fire on a temporary server. "
                "Run `prefect server start` in another terminal, then "
                "`export PREFECT_API_URL=http://127.0.0.1:4200/api` and retry."
            )
    review_calls.serve(
        name="nightly",
        cron=cron,
        parameters={"folder": folder, "db": db, "config_file": config_file},
        description="Nightly review of new call recordings.",
    )
