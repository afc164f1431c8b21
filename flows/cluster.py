"""Where a run's tasks execute: threads of the flow's own process (the default), or the worker
processes of a Dask cluster through prefect-dask ([run] dask_address, dask_workers).

On a cluster, preparation, transcription and measurement are Dask tasks; the flow process keeps
the one DuckDB writer, the manifest and the voice prints, and stores each chunk as its tasks
come back. Each worker process loads its models once (flows/tasks.py). Recordings and models
are read by path, so every worker must see the recordings folder and the models folder at the
paths the flow uses (README, "Running on a Dask cluster"). A worker that runs another callreview
version or another Whisper checkpoint would store figures that differ from its neighbours' for
no reason in the calls: the run refuses such a cluster before any call is touched.

GPU workers advertise a resource (`dask worker --nworkers 1 --resources GPU=1`): when any worker
has one, transcription tasks ask for it, so they run one per GPU, and preparation and
measurement go to the other workers.
"""

from __future__ import annotations

from typing import Any

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

from flows.tasks import RunImpossibleError
from pipeline import asr, review
from pipeline.config import Config


class ClusterRefusedError(RunImpossibleError):
    """The Dask cluster cannot run this flow's tasks (version or model differs, no workers)."""


def task_runner(config: Config) -> TaskRunner:
    """The run's task runner, not yet started."""
    run = config.run
    if run.dask_address:
        return DaskTaskRunner(address=run.dask_address)
    if run.dask_workers:
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": run.dask_workers,
                "threads_per_worker": 1,  # one call at a time per process: torch uses its cores
                "processes": True,
                "dashboard_address": None,
                # the flow's Prefect API (a run without a server has a temporary one): the
                # workers' task runs report there instead of each starting a server of its own
                "env": {"PREFECT_API_URL": _api_url()},
            }
        )
    return ThreadPoolTaskRunner(max_workers=run.workers)


def _api_url() -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return str(client.api_url).rstrip("/")


def on_cluster(runner: TaskRunner) -> bool:
    return isinstance(runner, DaskTaskRunner)


def identity(config: Config) -> tuple[str, str]:
    """What produced a call's figures in this process: callreview's version and the Whisper
    checkpoint. Run on every worker and compared with the flow's."""
    return review.versions()["callreview"], asr.model_version(
        config.run.model, config.run.models_dir
    )


def check_cluster(runner: DaskTaskRunner, config: Config) -> None:
    """Refuse a cluster without workers, or with a worker whose callreview version or model
    differs from the flow's (ClusterRefusedError, one line naming the workers)."""
    client = runner.client
    try:
        found: dict[str, Any] = client.run(identity, config)
    except Exception as e:  # noqa: BLE001  a worker that cannot import callreview at all
        raise ClusterRefusedError(
            f"Dask workers at {client.scheduler.address} cannot run callreview: "
            f"{type(e).__name__}: {e}"
        ) from None
    if not found:
        raise ClusterRefusedError(f"the Dask cluster at {client.scheduler.address} has no workers")
    mine = tuple(identity(config))
    wrong = {w: tuple(v) for w, v in found.items() if tuple(v) != mine}
    if wrong:
        listed = "; ".join(f"{w}: callreview {v[0]}, model {v[1]}" for w, v in wrong.items())
        raise ClusterRefusedError(
            f"Dask workers differ from this run (callreview {mine[0]}, model {mine[1]}): {listed}"
        )


def gpu_annotations(runner: DaskTaskRunner) -> dict[str, Any]:
    """The Dask annotation transcription tasks carry: GPU=1 when some worker has a GPU."""
    workers = runner.client.scheduler_info(n_workers=-1)["workers"].values()
    return (
        {"resources": {"GPU": 1}} if any("GPU" in w.get("resources", {}) for w in workers) else {}
    )
