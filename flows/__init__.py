"""Prefect layer: the review flow and its nightly deployment, thin wrappers over pipeline/."""

import os

# Before Prefect is imported anywhere: no telemetry, no DNS lookups from a machine that has no
# network beyond the package registries.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# `callreview run` without a server starts a temporary one; Prefect gives it 20 s, which a
# machine busy transcribing (or a 2-core CI runner) can miss: "Timed out while attempting to
# connect to ephemeral Prefect API server" stopped whole runs here under load.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
