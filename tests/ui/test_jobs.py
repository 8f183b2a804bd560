"""The one shape of background work (ui.jobs): a job's life (result, Stop, time limit, refusal,
crash), following it from a page, and the server's slots that sessions wait for in line."""
from __future__ import annotations

import threading
import os
import time

import pytest

from cka_core import RepresentationError
from ui import jobs


def _finished(job: jobs.Job) -> jobs.Job:
    job.thread.join(timeout=10)
    assert not job.running
    return job


def _counting(steps: int, pause: float = 0.0):
    def work(job: jobs.Job) -> int:
        for step in range(steps):
            job.report(step, steps, f"step {step} of {steps}")
            time.sleep(pause)
        return steps
    return work


def test_a_job_returns_its_result_and_its_progress():
    job = _finished(jobs.Job(("k",), "Counting").start(_counting(5)))
    assert job.result == 5 and job.failure is None
    assert (job.done, job.total, job.stage) == (4, 5, "step 4 of 5")


def test_stop_ends_the_work_at_its_next_report_and_runs_the_stop_hooks():
    ended = []
    job = jobs.Job(("k",), "Counting")
    job.on_stop.append(lambda: ended.append("worker killed"))
    job.start(_counting(10_000, pause=0.001))
    while job.done < 3:
        time.sleep(0.001)
    job.stop()
    _finished(job)
    assert ended == ["worker killed"] and job.result is None
    assert job.failure.startswith("Stopped (step ") and job.done < 9_999


def test_the_time_limit_gives_up_with_where_it_was():
    job = _finished(jobs.Job(("k",), "Counting", time_limit=0.05).start(_counting(10_000, pause=0.001)))
    assert job.result is None and job.failure.startswith("Gave up after 0 s (step ")


def test_a_refusal_is_shown_as_it_is_and_a_crash_says_what_failed():
    def refuse(job):
        raise RepresentationError("x.npz: no layers; save one array per layer.")

    def crash(job):
        raise ZeroDivisionError("division by zero")

    assert _finished(jobs.Job(("k",), "Loading").start(refuse)).failure == "x.npz: no layers; save one array per layer."
    assert (_finished(jobs.Job(("k",), "Loading").start(crash)).failure
            == "Loading failed (ZeroDivisionError: division by zero).")


def test_a_stop_before_the_first_step_says_so():
    job = jobs.Job(("k",), "Counting")
    job.stop()
    assert _finished(job.start(_counting(3))).failure == "Stopped (before the first step)."


class _Slot:
    """Stands in for an st.empty(): records what is drawn in it."""

    def __init__(self):
        self.drawn = []

    def progress(self, value, text):
        self.drawn.append(("bar", round(value, 2), text))

    def caption(self, text):
        self.drawn.append(("caption", text))


def test_follow_draws_a_bar_when_the_total_is_known_and_a_caption_otherwise(monkeypatch):
    monkeypatch.setattr(jobs, "REDRAW_SECONDS", 0.01)
    slot = _Slot()
    job = jobs.Job(("k",), "Counting").start(_counting(20, pause=0.01))
    assert jobs.follow(job, slot) and job.result == 20
    assert slot.drawn[-1][0] == "bar" and slot.drawn[-1][2].startswith("step 19 of 20 · ")
    slot = _Slot()
    job = jobs.Job(("k",), "Loading model.onnx", stage="Loading model.onnx…").start(lambda job: time.sleep(0.05))
    assert jobs.follow(job, slot)
    assert slot.drawn[0] == ("caption", ":material/hourglass_top: Loading model.onnx… · 0 s")


def test_follow_lets_the_run_end_after_follow_seconds_while_the_job_goes_on(monkeypatch):
    monkeypatch.setattr(jobs, "FOLLOW_SECONDS", 0.0)
    release = threading.Event()
    job = jobs.Job(("k",), "Waiting").start(lambda job: release.wait(10))
    assert not jobs.follow(job, _Slot()) and job.running
    release.set()
    assert _finished(job).result is True


def test_slots_serve_waiters_in_the_order_they_came():
    slots = jobs.Slots(1)
    assert slots.acquire()
    order, first, second = [], object(), object()
    for ticket in (first, second):  # each polls once and keeps its place
        assert not slots.acquire(timeout=0.01, ticket=ticket)
    assert (slots.place(first), slots.place(second)) == (1, 2)

    def wait(name, ticket):
        assert slots.acquire(timeout=10, ticket=ticket)
        order.append(name)
        slots.release()

    threads = [threading.Thread(target=wait, args=("second", second)),
               threading.Thread(target=wait, args=("first", first))]
    for thread in threads:  # the second waiter asks first, and still goes second
        thread.start()
        time.sleep(0.05)
    slots.release()
    for thread in threads:
        thread.join(timeout=10)
    assert order == ["first", "second"] and slots.place(first) is None


def test_a_waiter_that_leaves_gives_its_place_to_the_next():
    slots = jobs.Slots(1)
    assert slots.acquire()
    gone, staying = object(), object()
    assert not slots.acquire(timeout=0.01, ticket=gone)
    assert not slots.acquire(timeout=0.01, ticket=staying)
    slots.leave(gone)
    assert slots.place(staying) == 1
    slots.release()
    assert slots.acquire(timeout=1, ticket=staying)


@pytest.mark.parametrize("blocking, timeout", [(False, None), (True, 0.01)])
def test_a_waiter_without_a_ticket_does_not_keep_a_place_it_cannot_come_back_to(blocking, timeout):
    slots = jobs.Slots(1)
    assert slots.acquire()
    assert not slots.acquire(blocking, timeout)
    slots.release()
    assert slots.acquire(blocking=False)  # nobody invisible is ahead in line


# ------------------------------------------------------------------------------ the worker pool
def counted_in_a_worker(steps: int, pause: float, *, progress) -> int:
    """Work for the pool (importable by name in the worker): counts, reporting each step; returns its pid."""
    import os

    for step in range(steps):
        progress(step + 1, steps)
        time.sleep(pause)
    return os.getpid()


def squares_in_a_worker(steps: int, pause: float, *, progress) -> int:
    """Reports the row (k, k^2) at each step; Stop ends it early with the steps done (like training, which keeps
    its best network), so the job keeps a result."""
    from ui.jobs import Stopped

    for step in range(steps):
        try:
            progress(step + 1, steps, (step, step * step))
        except Stopped:
            return step
        time.sleep(pause)
    return steps


def too_wide_a_row_in_a_worker(*, progress) -> None:
    progress(1, 1, tuple(range(jobs.ROW_WIDTH + 1)))


class KeepingJob(jobs.Job):
    keeps_result_on_stop = True


KEPT: list = []


def fragmented_in_a_worker(*, progress) -> int:
    """Work that leaves the heap fragmented (many small objects, one kept in every hundred), as the trust
    scorecard's many small arrays did; returns the worker's resident MB once it has freed them."""
    many = [bytearray(2048) for _ in range(300_000)]  # ~600 MB in small blocks
    KEPT.extend(many[::100])  # what the job leaves behind (a cache) pins pages all over the heap
    del many
    progress(1, 1)
    return resident_mb()


def resident_mb(*, progress=None) -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def refused_in_a_worker(*, progress) -> None:
    raise RepresentationError("layers_a: no rows; pass one row per example.")


@pytest.fixture(scope="module")
def pool():
    return jobs.WorkerPool(1)


def test_pool_work_runs_in_another_process_and_reports_its_progress(pool):
    import os

    job = _finished_within(jobs.Job(("k",), "Counting").start_in(pool, counted_in_a_worker, 5, 0.01), 60)
    assert job.failure is None and job.result != os.getpid()
    assert (job.done, job.total) == (5, 5) and job.ended is not None


def test_stop_reaches_the_worker_and_the_lane_is_free_again(pool):
    job = jobs.Job(("k",), "Counting").start_in(pool, counted_in_a_worker, 100_000, 0.001)
    deadline = time.perf_counter() + 60
    while job.done < 3 and time.perf_counter() < deadline:
        time.sleep(0.01)
    job.stop()
    _finished_within(job, 30)
    assert job.result is None and job.failure.startswith("Stopped (") and job.done < 100_000
    again = _finished_within(jobs.Job(("k",), "Counting").start_in(pool, counted_in_a_worker, 2, 0.0), 60)
    assert again.failure is None


def test_a_second_job_waits_in_line_and_says_so(pool):
    first = jobs.Job(("a",), "Counting").start_in(pool, counted_in_a_worker, 100_000, 0.001)
    deadline = time.perf_counter() + 60
    while first.done == 0 and time.perf_counter() < deadline:
        time.sleep(0.01)
    second = jobs.Job(("b",), "Counting").start_in(pool, counted_in_a_worker, 2, 0.0)
    time.sleep(3 * jobs.REDRAW_SECONDS)
    assert second.waiting == "Waiting for the server's worker: next in line" and second.done == 0
    assert "next in line" in second.status()
    first.stop()
    _finished_within(second, 60)
    assert second.failure is None and second.waiting is None and _finished_within(first, 30).result is None


def test_a_finished_job_hands_its_freed_memory_back(pool):
    """A worker keeps only what it still uses once a job ends: glibc kept the freed heap of a scorecard
    (1.3 GB resident in each replica's worker, for good) until it was asked to trim it."""
    while_freed = _finished_within(jobs.Job(("k",), "Fragmenting").start_in(pool, fragmented_in_a_worker), 120).result
    after = _finished_within(jobs.Job(("k",), "Measuring").start_in(pool, resident_mb), 60).result
    assert while_freed - after > 300, (while_freed, after)  # freed inside the job but still resident, then given back


def test_idle_workers_stop_and_the_next_job_starts_them_again():
    """Workers without a job for idle_seconds stop (each held 0.4 GB of imports in every replica); the next
    job starts a new one and runs as before."""
    idle = jobs.WorkerPool(1, idle_seconds=0.5)
    first = _finished_within(jobs.Job(("k",), "Counting").start_in(idle, counted_in_a_worker, 2, 0.0), 60).result
    deadline = time.perf_counter() + 30
    while idle._executor is not None and time.perf_counter() < deadline:
        time.sleep(0.1)
    assert idle._executor is None
    with pytest.raises(ProcessLookupError):  # the worker has gone
        for _ in range(100):
            os.kill(first, 0)
            time.sleep(0.1)
    second = _finished_within(jobs.Job(("k",), "Counting").start_in(idle, counted_in_a_worker, 2, 0.0), 60)
    assert second.failure is None and second.result != first


def test_rows_reported_in_the_worker_reach_the_job_in_order(pool):
    job = _finished_within(jobs.Job(("k",), "Squaring").start_in(pool, squares_in_a_worker, 30, 0.0), 60)
    assert job.failure is None and job.result == 30
    assert [row[:2] for row in job.rows] == [(k, k * k) for k in range(30)]
    assert all(len(row) == jobs.ROW_WIDTH and not any(row[2:]) for row in job.rows)  # padded with zeros
    again = _finished_within(jobs.Job(("k",), "Squaring").start_in(pool, squares_in_a_worker, 2, 0.0), 60)
    assert [row[:2] for row in again.rows] == [(0, 0), (1, 1)]  # the lane starts empty for the next job


def test_a_lane_holds_its_rows_and_the_job_still_ends(pool):
    count = jobs.ROWS_PER_LANE + 5
    job = _finished_within(jobs.Job(("k",), "Squaring").start_in(pool, squares_in_a_worker, count, 0.0), 60)
    assert job.result == count and len(job.rows) == jobs.ROWS_PER_LANE and (job.done, job.total) == (count, count)


def test_a_row_wider_than_a_lane_is_the_job_failure(pool):
    job = _finished_within(jobs.Job(("k",), "Squaring").start_in(pool, too_wide_a_row_in_a_worker), 60)
    assert job.result is None and f"at most {jobs.ROW_WIDTH} numbers" in job.failure


def test_a_job_that_keeps_its_result_on_stop_ends_with_what_it_did(pool):
    job = KeepingJob(("k",), "Squaring").start_in(pool, squares_in_a_worker, 100_000, 0.02)
    deadline = time.perf_counter() + 60
    while len(job.rows) < 3 and time.perf_counter() < deadline:
        time.sleep(0.01)
    job.stop()
    _finished_within(job, 30)
    assert job.failure is None and 3 <= job.result < jobs.ROWS_PER_LANE
    assert len(job.rows) == job.result  # every step it did, reported
    plain = jobs.Job(("k",), "Squaring").start_in(pool, squares_in_a_worker, 100_000, 0.001)
    while not plain.rows and time.perf_counter() < deadline:
        time.sleep(0.01)
    plain.stop()
    assert _finished_within(plain, 30).result is None and plain.failure.startswith("Stopped (")  # the default


def test_a_refusal_in_the_worker_is_the_job_failure(pool):
    job = _finished_within(jobs.Job(("k",), "Counting").start_in(pool, refused_in_a_worker), 60)
    assert job.failure == "layers_a: no rows; pass one row per example."


def _finished_within(job: jobs.Job, seconds: float) -> jobs.Job:
    job.thread.join(timeout=seconds)
    assert not job.running
    return job


def test_take_turn_says_the_place_while_waiting_and_an_interrupted_waiter_leaves_the_line():
    slots = jobs.Slots(1)
    assert slots.acquire()
    seen = []

    def interrupted(ahead, seconds):
        seen.append((ahead, seconds))
        if len(seen) == 2:
            raise KeyboardInterrupt  # stands in for the click that restarts the script

    with pytest.raises(KeyboardInterrupt):
        slots.take_turn(0.01, interrupted)
    assert seen == [(0, pytest.approx(0.01)), (0, pytest.approx(0.02))]
    slots.release()
    assert slots.acquire(blocking=False)  # the interrupted waiter no longer holds a place
