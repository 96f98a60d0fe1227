"""Where tasks run: in this process, on local worker processes, or on an existing Dask cluster.

Each executor takes the tasks and yields one journal record per task as tasks finish (in any
order). A task whose worker was lost yields a record marked ``transient``: it shows as an error
row, is not journaled, and so runs again when the sweep is resumed.

Local workers are never forked from this process. A fork copies only the calling thread, so a child
of a process whose HiGHS thread pool has run (any plan, verify or diagnosis before the sweep) can
wait forever on a lock held by a worker thread that does not exist in it (seen with highspy 1.16:
children spinning in ``highs::parallel::TaskGroup::~TaskGroup``). Workers come from a fork server
(a fresh interpreter started once, which has run no solver) or, where there is none, are spawned.
"""
from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from lepton_sim.errors import InputError
from lepton_sim.sweeps.points import Task
from lepton_sim.sweeps.runner import run_task

Record = dict[str, Any]
Executor = Callable[[Sequence[Task]], Iterator[Record]]


def serial(tasks: Sequence[Task]) -> Iterator[Record]:
    """Run the tasks one after another in this process."""
    for task in tasks:
        yield run_task(task)


def worker_context() -> multiprocessing.context.BaseContext:
    """A start method whose workers share no threads' state with this process: forkserver, else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["lepton_sim.sweeps.runner"])  # imported once by the server, not per worker
        return ctx
    return multiprocessing.get_context("spawn")


def local_processes(workers: int) -> Executor:
    """Run the tasks on `workers` local processes (concurrent.futures, see `worker_context`)."""

    def run(tasks: Sequence[Task]) -> Iterator[Record]:
        if not tasks:
            return
        with ProcessPoolExecutor(max_workers=max(1, min(workers, len(tasks))), mp_context=worker_context()) as pool:
            futures: dict[Future[Record], Task] = {pool.submit(run_task, t): t for t in tasks}
            try:
                for f in as_completed(futures):
                    yield _outcome(f, futures[f])
            finally:
                for f in futures:
                    f.cancel()

    return run


CONNECT_TIMEOUT_S = 10.0


def dask_cluster(address: str) -> Executor:
    """Run the tasks on the Dask distributed cluster whose scheduler listens at `address`."""

    def run(tasks: Sequence[Task]) -> Iterator[Record]:
        from distributed import Client
        from distributed import as_completed as dask_completed

        try:
            client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(f"--scheduler {address}: cannot connect to a Dask scheduler: {exc}") from None
        tag = uuid.uuid4().hex[:8]  # keys unique to this run: others may share the cluster
        futures: dict[Any, Task] = {}
        try:
            futures = {client.submit(run_task, t, key=f"lepton-sweep-{tag}-{t.index}", pure=False): t for t in tasks}
            for f in dask_completed(list(futures), loop=client.loop):
                yield _outcome(f, futures[f])
                f.release()
        finally:
            if futures:
                client.cancel(list(futures))
            client.close()

    return run


def _outcome(future: Any, task: Task) -> Record:
    """The future's record, or a transient error record when the worker (not the point) failed."""
    try:
        return dict(future.result())
    except Exception as exc:  # noqa: BLE001 - a lost worker or a broken pool, not the point's fault
        hint = ""
        if isinstance(exc, BrokenProcessPool):
            hint = (" (a worker process died: killed, out of memory, or, when a script calls lepton_sim.sweep "
                    "with workers > 1, the call is not under `if __name__ == \"__main__\":`, which workers need "
                    "because they start in a fresh interpreter that imports the script)")
        return {"task": task.index, "point": task.point, "seed": task.seed, "run_seed": task.run_seed,
                "values": {p: None for p in task.collect}, "status": "error",
                "error": f"worker failed: {type(exc).__name__}: {exc}{hint}", "transient": True}
