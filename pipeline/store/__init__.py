"""The DuckDB file analysts query. Every SQL statement callreview runs lives in this package:

schema.py   tables generated from pipeline/records.py, and the analysts' views
db.py       connect, transaction, bulk writes
writes.py   what a run writes: runs, calls, failures, derived tables
history.py  what a run reads back: done calls, the base tables, the drift summary
reads.py    what the calibration report reads
calibration.py  calibration sessions: imported scores and files, the agreement reads
coaching.py  coaching events, the call figures their outcomes are computed from, the outcomes
voices.py   agents' voice prints (kept across runs) and how each call's speech was attributed
remask.py   masking stored text again when the PII rules change
"""

from pipeline.store import reads
from pipeline.store.db import (
    StoreLockedError,
    connect,
    replace_table,
    run_query,
    to_json,
    transaction,
    write_frame,
)
from pipeline.store.history import (
    History,
    agent_batches,
    agents_of,
    agents_of_calls_after,
    changed_agents,
    done_calls,
    last_finished,
    load_history,
    stale_transcripts,
    top_drift,
)
from pipeline.store.remask import save_remasked, stale_masked
from pipeline.store.schema import DERIVED_TABLES, TABLES, schema_sql
from pipeline.store.snapshot import open_for_run, publish, working_path
from pipeline.store.voices import (
    load_voice_prints,
    save_attributions,
    save_voice_prints,
    stored_stereo_calls,
)
from pipeline.store.writes import (
    clear_derived,
    finish_run,
    mark_interrupted_runs,
    replace_derived,
    save_call,
    save_chunk,
    save_failed_call,
    save_text_work,
    start_run,
    update_looks,
    write_failures,
)

__all__ = [
    "DERIVED_TABLES",
    "TABLES",
    "reads",
    "History",
    "StoreLockedError",
    "connect",
    "agent_batches",
    "agents_of",
    "agents_of_calls_after",
    "changed_agents",
    "clear_derived",
    "done_calls",
    "finish_run",
    "last_finished",
    "load_history",
    "load_voice_prints",
    "mark_interrupted_runs",
    "open_for_run",
    "publish",
    "working_path",
    "replace_derived",
    "save_remasked",
    "stale_masked",
    "stale_transcripts",
    "replace_table",
    "run_query",
    "save_attributions",
    "save_call",
    "save_chunk",
    "save_failed_call",
    "save_text_work",
    "save_voice_prints",
    "stored_stereo_calls",
    "schema_sql",
    "start_run",
    "to_json",
    "top_drift",
    "transaction",
    "update_looks",
    "write_failures",
    "write_frame",
]
