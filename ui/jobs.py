"""Work that outlives one run of a page's script, in one shape: model loads, resampling, training.

A :class:`Job` is started once, reports its progress (done of total, and the stage it is at), can
be asked to stop, and ends with a result or a failure (a sentence the page shows as it is). A click
elsewhere restarts the page's script, not the job: the page keeps the job in its session state,
follows it with :func:`follow` and takes its result on a later run.

Heavy work (resampling, training, the trust scorecards) runs in the server's :class:`WorkerPool`: a
few worker processes shared by every session, outside the server's event loop and GIL, so one
student's run does not slow another's moves. A job waits for its turn there in line and says its
place; Stop reaches the worker. Work may report a row of numbers with each step (training: one per
epoch), which the page draws while the job runs; and a job may keep what it has when stopped
(training keeps the best network so far) instead of ending without a result.
"""
from __future__ import annotations

import ctypes
import gc
import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as NotYet
from dataclasses import dataclass, field
from typing import ClassVar

from cka_core import RepresentationError

_LOG = logging.getLogger("cka_explorer")
#: Seconds one script run follows a running job before it lets the run end (the job goes on and a
#: later run picks it up). None in the app: follow until the job ends. Tests set 0 to stand in for
#: a click elsewhere that restarts the script while a job runs.
FOLLOW_SECONDS: float | None = None
REDRAW_SECONDS = 0.2


class Stopped(Exception):
    """Raised inside a job's work, at its next report, once Stop was pressed."""


class TimeUp(Exception):
    """Raised inside a job's work, at its next report, once its time limit has passed."""


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


@dataclass(eq=False)
class Job:
    """One piece of background work of a session.

    ``work`` runs in a thread of its own (:meth:`start`) and calls :meth:`report` as it goes, which
    is where Stop and the time limit take effect; or the page steps the work itself between its
    own UI calls (training) and reports the same way. Subclasses word the failures."""

    key: tuple
    what: str                                  # what the job does, for its messages
    time_limit: float | None = None            # seconds, then it gives up
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None
    done: int = 0
    total: int = 0                             # 0: no count known (a model load)
    stage: str = ""                            # where it is, e.g. "Bootstrap: 40 of 200"
    waiting: str | None = None                 # why it is not running yet, while it waits
    result: object = None
    failure: str | None = None                 # why it ended without a result
    rows: list[tuple[float, ...]] = field(default_factory=list, repr=False)  # reported step by step (pool work)
    thread: threading.Thread | None = field(default=None, repr=False)
    stop_event: threading.Event = field(default_factory=threading.Event, repr=False)
    on_stop: list[Callable[[], None]] = field(default_factory=list, repr=False)  # e.g. kill a worker process
    #: Stop asks the work to end early with what it has (its work catches :class:`Stopped` and returns),
    #: rather than ending the job without a result.
    keeps_result_on_stop: ClassVar[bool] = False

    # ---------------------------------------------------------------- the thread's side
    def start(self, work: Callable[[Job], object]) -> Job:
        """Run ``work(self)`` in a daemon thread; its return value becomes :attr:`result`."""
        self.thread = threading.Thread(target=self._run, args=(work,), name=f"cka-{type(self).__name__}", daemon=True)
        self.thread.start()
        return self

    def start_in(self, pool: WorkerPool, work: Callable, *args, **kwargs) -> Job:
        """Run ``work(*args, progress=..., **kwargs)`` in one of ``pool``'s processes, after waiting
        for a turn there; ``work`` must be importable by name (a function of the core) and call
        ``progress(done, total)``, or ``progress(done, total, row)`` with a row of at most
        :data:`ROW_WIDTH` numbers for :attr:`rows`. That call is where Stop and the time limit reach it."""
        return self.start(lambda job: pool.run(job, work, args, kwargs))

    def stage_of(self, done: int, total: int) -> str:
        """Where work in a pool is, from the count it reports (subclasses name their phases)."""
        return f"{done} of {total}"

    def _run(self, work: Callable[[Job], object]) -> None:
        """No Streamlit call in here: only the core and the job's own fields."""
        try:
            self.result = work(self)
        except Stopped:
            self.failure = self.stopped_text()
        except TimeUp:
            self.failure = self.time_up_text()
        except RepresentationError as error:
            self.failure = self.refused_text(error)
        except Exception as error:  # noqa: BLE001 - a thread's exception would otherwise vanish
            _LOG.exception("%s failed", self.what)
            self.failure = self.crashed_text(error)
        finally:
            self.ended = time.perf_counter()

    def report(self, done: int, total: int, stage: str = "") -> None:
        """Progress so far; raises :class:`Stopped` or :class:`TimeUp` to end the work there."""
        if self.stop_event.is_set():
            raise Stopped
        if self.time_limit is not None and self.seconds > self.time_limit:
            raise TimeUp
        self.update(done, total, stage)

    def update(self, done: int, total: int, stage: str = "") -> None:
        """Progress so far, from work the page steps itself (it checks Stop between its steps)."""
        self.done, self.total, self.stage = done, total, stage

    # ---------------------------------------------------------------- the page's side
    def stop(self) -> None:
        """Ask the work to end at its next report, and end what it runs outside this process now."""
        self.stop_event.set()
        for end in self.on_stop:
            end()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    @property
    def seconds(self) -> float:
        """Seconds since it started, until it ended."""
        return (self.ended or time.perf_counter()) - self.started

    def where(self) -> str:
        return self.stage or "before the first step"

    def status(self) -> str:
        """One line for the progress bar or caption: what it waits for, or where it is, and the time."""
        return f"{self.waiting or self.stage or self.what} · {self.seconds:.0f} s"

    # ---------------------------------------------------------------- how it ended, in words
    def stopped_text(self) -> str:
        return f"Stopped ({self.where()})."

    def time_up_text(self) -> str:
        return f"Gave up after {duration(self.time_limit or 0.0)} ({self.where()})."

    def refused_text(self, error: RepresentationError) -> str:
        return str(error)

    def crashed_text(self, error: Exception) -> str:
        return f"{self.what} failed ({type(error).__name__}: {error})."


def draw(job: Job, slot) -> None:
    """The job's progress in ``slot``: a bar when its total is known, else a caption with the time."""
    if job.total and not job.waiting:
        slot.progress(min(1.0, job.done / job.total), text=job.status())
    else:
        slot.caption(f":material/hourglass_top: {job.status()}")


def follow(job: Job, slot, also: Callable[[], None] | None = None) -> bool:
    """Redraw the job's progress until it ends (or :data:`FOLLOW_SECONDS` pass); True if it has
    ended. Each redraw is a point where a click restarts the script, leaving the job running.
    ``also`` draws more after each redraw (training's live curves)."""
    deadline = None if FOLLOW_SECONDS is None else time.perf_counter() + FOLLOW_SECONDS
    while True:
        draw(job, slot)
        if also is not None:
            also()
        if not job.running or (deadline is not None and time.perf_counter() >= deadline):
            return not job.running
        time.sleep(REDRAW_SECONDS)


class Slots:
    """The server's turns at one kind of work, shared by every session: at most ``count`` at once,
    the others wait in line in the order they came. ``acquire`` and ``release`` work like a
    semaphore's; a waiter that gives up leaves the line (:meth:`leave`)."""

    def __init__(self, count: int):
        self._free = count
        self._line: deque[object] = deque()
        self._changed = threading.Condition()

    def acquire(self, blocking: bool = True, timeout: float | None = None, *, ticket: object | None = None) -> bool:
        """Take a turn. With a ``ticket``, a wait that times out keeps its place for the next call."""
        keep_place = ticket is not None
        ticket = ticket if keep_place else object()
        with self._changed:
            if ticket not in self._line:
                self._line.append(ticket)

            def my_turn() -> bool:
                return self._free > 0 and self._line[0] is ticket

            if not (self._changed.wait_for(my_turn, timeout) if blocking else my_turn()):
                if not keep_place:
                    self._line.remove(ticket)
                    self._changed.notify_all()
                return False
            self._line.popleft()
            self._free -= 1
            self._changed.notify_all()
            return True

    def release(self) -> None:
        with self._changed:
            self._free += 1
            self._changed.notify_all()

    def take_turn(self, poll: float, waiting: Callable[[int, float], None]) -> None:
        """Wait in line for a turn, calling ``waiting(ahead, seconds)`` after each ``poll`` seconds
        without one (``ahead``: how many wait before this one). An exception out of ``waiting`` (Stop,
        a click that restarts the script) gives the place up."""
        ticket, waited = object(), 0.0  # the ticket keeps the place in line between polls
        try:
            while not self.acquire(timeout=poll, ticket=ticket):
                waited += poll
                waiting((self.place(ticket) or 1) - 1, waited)
        except BaseException:
            self.leave(ticket)
            raise

    def leave(self, ticket: object) -> None:
        """A waiter gives up its place (its run was interrupted while it waited)."""
        with self._changed:
            if ticket in self._line:
                self._line.remove(ticket)
                self._changed.notify_all()

    def place(self, ticket: object) -> int | None:
        """1 for the next in line, None when not waiting."""
        with self._changed:
            return self._line.index(ticket) + 1 if ticket in self._line else None


def wait_for_turn(job: Job, slots: Slots, what: str) -> None:
    """Wait in line for one of ``slots`` on behalf of ``job``, which says its place meanwhile ("Waiting for
    {what}: next in line"); Stop and the time limit end the wait (the job's :meth:`Job.report` raises)."""
    def waiting(ahead: int, _: float) -> None:
        job.waiting = (f"Waiting for {what}: {f'{ahead} runs ahead' if ahead > 1 else 'one run ahead'}"
                       if ahead else f"Waiting for {what}: next in line")
        job.report(job.done, job.total, job.stage)

    try:
        slots.take_turn(REDRAW_SECONDS, waiting)
    finally:
        job.waiting = None


# ------------------------------------------------------------------------------ the worker pool
_LANES: tuple | None = None  # in a worker process: the pool's shared progress, stop flags and rows
#: Numbers per reported row, and rows a lane holds for one job (training's 200 epochs and the original).
ROW_WIDTH, ROWS_PER_LANE = 16, 256


def _enter_worker(progress, stops, rows, row_counts) -> None:
    """A worker process starts: keep the shared lanes, and compute on one thread like the server."""
    global _LANES
    _LANES = (progress, stops, rows, row_counts)
    import torch  # noqa: PLC0415 - only in the worker
    from threadpoolctl import threadpool_limits  # noqa: PLC0415
    torch.set_num_threads(1)
    threadpool_limits(limits=1, user_api="blas")


def _run_in_lane(lane: int, work: Callable, args: tuple, kwargs: dict):
    """In a worker: run ``work`` reporting through lane ``lane``; Stop there raises :class:`Stopped`."""
    progress, stops, rows, row_counts = _LANES

    def report(done: int, total: int, row: tuple[float, ...] | None = None) -> None:
        if stops[lane]:
            raise Stopped
        if row is not None:
            _put_row(rows, row_counts, lane, row)
        progress[2 * lane], progress[2 * lane + 1] = done, total

    try:
        return work(*args, progress=report, **kwargs)
    finally:
        release_freed_memory()


def _put_row(rows, row_counts, lane: int, row: tuple[float, ...]) -> None:
    """Append ``row`` to the lane's rows: its numbers first, then the count the server reads, so the
    server never reads a row half written. A lane holds :data:`ROWS_PER_LANE` rows; a job's later rows
    stay in the worker (its result carries everything)."""
    if len(row) > ROW_WIDTH:
        raise ValueError(f"a reported row holds at most {ROW_WIDTH} numbers, not {len(row)}")
    count = row_counts[lane]
    if count >= ROWS_PER_LANE:
        return
    start = (lane * ROWS_PER_LANE + count) * ROW_WIDTH
    rows[start:start + len(row)] = [float(v) for v in row]
    row_counts[lane] = count + 1


def release_freed_memory() -> None:
    """Hand the memory a finished job freed back to the system. glibc keeps freed heap pages for reuse,
    so a worker that once computed the trust scorecard (1.3 GB at its peak) held 1.3 GB for good; after
    a trim it holds what it still uses (0.4 GB). A no-op off glibc."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def pool_size() -> int:
    """Worker processes per server (env CKA_WORKERS; default one less than the cores, at least one)."""
    configured = os.environ.get("CKA_WORKERS")
    return max(1, int(configured)) if configured else max(1, (os.cpu_count() or 2) - 1)


def worker_idle_seconds() -> float:
    """Seconds the pool's workers stay without a job before they stop (env CKA_WORKER_IDLE_SECONDS, default 120)."""
    return max(0.0, float(os.environ.get("CKA_WORKER_IDLE_SECONDS", 120)))


class WorkerPool:
    """Worker processes shared by every session of this server, started on first use. At most
    ``workers`` jobs run at once, one per lane; the others wait in line (:class:`Slots`). Each lane
    is a pair of shared counters (done, total), a stop flag and room for the rows a job reports, so a
    worker reports progress and learns of Stop without a message round trip."""

    def __init__(self, workers: int, idle_seconds: float | None = None):
        self.workers = workers
        self.idle_seconds = worker_idle_seconds() if idle_seconds is None else idle_seconds
        self.slots = Slots(workers)
        self._context = multiprocessing.get_context("spawn")  # never fork a threaded server
        self._progress = self._context.Array("q", 2 * workers, lock=False)
        self._stops = self._context.Array("b", workers, lock=False)
        self._rows = self._context.Array("d", workers * ROWS_PER_LANE * ROW_WIDTH, lock=False)
        self._row_counts = self._context.Array("q", workers, lock=False)
        self._free = list(range(workers))
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._last_done = time.monotonic()

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(self.workers, mp_context=self._context,
                                                     initializer=_enter_worker,
                                                     initargs=(self._progress, self._stops, self._rows, self._row_counts))
            return self._executor

    def _count(self, job: Job, lane: int) -> tuple[int, int, str]:
        """The lane's progress for ``job``, after taking its new rows (the stage may read them)."""
        done, total = self._progress[2 * lane], self._progress[2 * lane + 1]
        for k in range(len(job.rows), self._row_counts[lane]):
            start = (lane * ROWS_PER_LANE + k) * ROW_WIDTH
            job.rows.append(tuple(self._rows[start:start + ROW_WIDTH]))
        return done, total, job.stage_of(done, total) if total else ""

    def run(self, job: Job, work: Callable, args: tuple, kwargs: dict):
        """Wait for a turn, run ``work`` in a worker and follow it for ``job``; returns its result."""
        wait_for_turn(job, self.slots, "the server's worker")
        with self._lock:
            lane = self._free.pop()
        self._stops[lane], self._progress[2 * lane], self._progress[2 * lane + 1] = 0, 0, 0
        self._row_counts[lane] = 0
        try:
            future = self._pool().submit(_run_in_lane, lane, work, args, kwargs)
            while True:
                try:
                    result = future.result(timeout=REDRAW_SECONDS)
                except NotYet:
                    try:
                        job.report(*self._count(job, lane))
                    except (Stopped, TimeUp) as ended:
                        self._stops[lane] = 1  # the worker ends at its next step
                        if isinstance(ended, Stopped) and job.keeps_result_on_stop:
                            result = future.result()  # what the work kept
                            job.update(*self._count(job, lane))
                            return result
                        future.exception()
                        raise
                else:
                    job.update(*self._count(job, lane))
                    return result
        finally:
            with self._lock:
                self._free.append(lane)
                self._last_done = time.monotonic()
            self.slots.release()
            retire = threading.Timer(self.idle_seconds, self._retire_if_idle)
            retire.daemon = True
            retire.start()

    def _retire_if_idle(self) -> None:
        """Stop the workers once no job has run for ``idle_seconds``: an idle worker holds its imports (torch:
        0.4 GB per replica) for nothing; the next job starts them again, a few seconds into its progress."""
        with self._lock:
            idle = len(self._free) == self.workers and time.monotonic() - self._last_done >= self.idle_seconds
            if idle and self._executor is not None:
                self._executor.shutdown(wait=False)
                self._executor = None


#: The pool every session of this server shares.
POOL = WorkerPool(pool_size())
