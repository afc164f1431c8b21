"""Prefect layer: the review flow and its nightly deployment, thin wrappers over pipeline/."""

import os

# Before Prefect is imported anywhere: no telemetry, no DNS lookups from a machine that has no
# network beyond the package registries.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
