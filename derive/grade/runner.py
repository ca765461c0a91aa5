"""Running a grading: plan the distinct answers, decide them on worker processes or a Dask cluster, keep
every result in SQLite as it comes.

One code path serves both: `concurrent.futures.ProcessPoolExecutor(jobs)` on this machine, or the
`concurrent.futures` executor of a `dask.distributed.Client` (`--scheduler ADDRESS`). A worker that
dies takes its answer with it: each worker marks the answer it is on (a file named by its process
id), so after a broken pool the answers of dead workers are known; each is retried once, then
graded `error` with the reason, and the run goes on with a fresh pool. Dask retries a task whose
worker was lost by itself (`retries=1`), then reports it lost. An interrupted run leaves every
result so far in the store; `--resume` decides only what has no row.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from derive.errors import DeriveError, InputError
from derive.grade import grading
from derive.grade.assignment import Assignment
from derive.grade.store import Store
from derive.grade.submissions import Submissions

MAX_ATTEMPTS = 2  # a worker that dies on an answer: the answer is tried once more, then graded error


@dataclass
class Task:
    key: str
    question: str
    answer: str
    syntax: str | None


@dataclass
class Plan:
    rows: list[tuple[str, str, str, str | None, str]]  # student, question, answer, syntax, key
    tasks: dict[str, Task]


def plan(assignment: Assignment, submissions: Submissions, *, distinct: bool = True, mapper=map) -> Plan:
    """Every student's answer to every question, and the tasks: one per distinct normal form (or, with
    `distinct` off, one per answer). Texts are folded first (grading.folded: spacing that cannot change the
    reading), and each folded text is read once, by `mapper` (the builtin map, or a pool's)."""
    rows, tasks = [], {}
    source = assignment.source
    answers = []  # (student, question, answer, syntax, the folded text's key or None)
    for student in submissions.students:
        for question in assignment.questions:
            answer, syntax = submissions.answers.get((student, question.id), ("", None))
            text = (question.id, grading.folded(answer, syntax or question.syntax), syntax) if distinct else None
            answers.append((student, question, answer, syntax, text))
    forms: dict = {}
    if distinct:
        texts: dict = {}
        for _student, _question, answer, _syntax, text in answers:
            texts.setdefault(text, answer)
        arguments = [(source, q, answer, s) for (q, _folded, s), answer in texts.items()]
        forms = dict(zip(texts, mapper(_normal_form, arguments)))
    for student, question, answer, syntax, text in answers:
        form = forms[text] if distinct else f"{student}\0{question.id}"
        key = hashlib.sha256(form.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        rows.append((student, question.id, answer, syntax, key))
        tasks.setdefault(key, Task(key, question.id, answer, syntax))
    return Plan(rows, tasks)


def _normal_form(arguments) -> str:
    return grading.normal_form(*arguments)


def _pool_mapper(jobs: int):
    """Reading the distinct texts on `jobs` processes (in order); if a worker dies, the rest is read here."""
    def mapper(function, items):
        items = list(items)
        if jobs < 2 or len(items) < 2 * jobs:
            return list(map(function, items))
        try:
            with cf.ProcessPoolExecutor(max_workers=jobs) as executor:
                return list(executor.map(function, items, chunksize=max(1, len(items) // (8 * jobs))))
        except cf.process.BrokenProcessPool:
            return list(map(function, items))
    return mapper


def run(assignment: Assignment, submissions: Submissions, out: Path, *, jobs: int = 1, scheduler: str | None = None,
        distinct: bool = True, resume: bool = False, budget: float = 5.0, seed: int = 0,
        progress: Callable[[int], object] | None = None) -> Store:
    """Grade into `out`/grades.sqlite; `progress(total)` returns a bar with update(n)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot make the folder: {exc.strerror}", where=str(out)) from None
    digests = {"assignment": assignment.source.digest, "submissions": submissions.digest, "distinct": str(distinct)}
    store = Store.open(out, digests, resume)
    work = plan(assignment, submissions, distinct=distinct, mapper=_pool_mapper(jobs if not scheduler else 2))
    store.add_answers(work.rows)
    done = store.done()
    pending = [task for key, task in work.tasks.items() if key not in done]
    bar = progress(len(work.tasks)) if progress else None
    if bar is not None:
        bar.update(len(work.tasks) - len(pending))
    try:
        if pending:
            arguments = (assignment.source, budget, seed)
            if scheduler:
                _on_cluster(scheduler, pending, arguments, store, bar)
            else:
                _on_processes(jobs, pending, arguments, store, bar)
    except BaseException:
        store.close()
        raise
    finally:
        if bar is not None:
            bar.close()
    return store


def _decide_marked(marks: str, task: Task, source, budget: float, seed: int) -> dict:
    """decide() in a pool worker, with a mark naming the answer it is on while it works."""
    mark = Path(marks) / str(os.getpid())
    mark.write_text(task.key, encoding="ascii")
    outcome = grading.decide(source, task.question, task.answer, task.syntax, budget, seed)
    mark.unlink()
    return outcome


def _decide(task: Task, source, budget: float, seed: int) -> dict:
    return grading.decide(source, task.question, task.answer, task.syntax, budget, seed)


def _on_processes(jobs: int, pending: list[Task], arguments, store: Store, bar) -> None:
    """A pool of `jobs` workers. When one dies, the pool is broken: the answers the dead workers were on
    (their marks) are each retried alone in a pool of one, so that an answer dying there is known to be the
    cause, and graded `error`; the answers that were only waiting go back to a fresh pool."""
    stalled = 0
    with tempfile.TemporaryDirectory(prefix="derive-grade-") as marks:
        while pending:
            before = len(pending)
            pending, suspects = _pool_round(jobs, pending, marks, arguments, store, bar, attempt=1)
            stalled = stalled + 1 if len(pending) == before and not suspects else 0
            if stalled >= MAX_ATTEMPTS:  # workers die before any answer: nothing to retry, the machine's fault
                raise DeriveError(f"the worker processes died {stalled} times before grading anything; "
                                  f"{len(pending)} answers are left (--resume continues)")
            for task in suspects:  # alone: a death now is this answer's
                left, died = _pool_round(1, [task], marks, arguments, store, bar, attempt=MAX_ATTEMPTS)
                pending += left
                for dead in died:
                    store.record(dead.key, dead.question, dead.answer, dead.syntax,
                                 _error(f"the worker grading this answer died {MAX_ATTEMPTS} times"), MAX_ATTEMPTS)
                    if bar is not None:
                        bar.update(1)


def _pool_round(jobs: int, tasks: list[Task], marks: str, arguments, store: Store, bar, attempt: int):
    """Decide `tasks` on a fresh pool until it finishes or breaks: (the tasks left, the tasks whose worker died)."""
    executor = cf.ProcessPoolExecutor(max_workers=jobs)
    futures = {executor.submit(_decide_marked, marks, task, *arguments): task for task in tasks}
    left = []
    try:
        for future in cf.as_completed(futures):
            task = futures[future]
            try:
                outcome = future.result()
            except cf.process.BrokenProcessPool:
                left.append(task)
                continue
            except Exception as exc:  # a fault of ours inside decide: this answer, not the run
                outcome = _error(f"{type(exc).__name__}: {exc}")
            store.record(task.key, task.question, task.answer, task.syntax, outcome, attempt)
            if bar is not None:
                bar.update(1)
    except BaseException:
        _stop(executor)
        raise
    executor.shutdown(wait=True, cancel_futures=True)
    dead = set()
    for mark in Path(marks).iterdir():  # the answers workers were on when the pool broke
        dead.add(mark.read_text(encoding="ascii"))
        mark.unlink()
    return [t for t in left if t.key not in dead], [t for t in left if t.key in dead]


def _stop(executor: cf.ProcessPoolExecutor) -> None:
    """An interrupted run: the workers are stopped now, not after the answers they are on."""
    for process in list(getattr(executor, "_processes", {}).values()):
        process.terminate()
    executor.shutdown(wait=False, cancel_futures=True)


def _on_cluster(address: str, pending: list[Task], arguments, store: Store, bar) -> None:
    try:
        from distributed import Client
    except ImportError:
        raise InputError("--scheduler needs Dask's distributed: pip install 'derive[cluster]'") from None
    try:
        client = Client(address, timeout=5)
    except (OSError, TimeoutError, ValueError) as exc:  # ValueError: not an address (no port, http://)
        raise InputError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        executor = client.get_executor(retries=MAX_ATTEMPTS - 1, pure=False)
        futures = {executor.submit(_decide, task, *arguments): task for task in pending}
        for future in cf.as_completed(futures):
            task = futures[future]
            try:
                outcome = future.result()
            except Exception as exc:  # KilledWorker: lost with its worker twice; or a fault of ours
                outcome = _error(f"{type(exc).__name__}: {exc}")
            store.record(task.key, task.question, task.answer, task.syntax, outcome, 1)
            if bar is not None:
                bar.update(1)
    finally:
        client.close()


def _error(reason: str) -> dict:
    return {"status": "error", "diagnosis": None, "message": reason, "seconds": 0.0}
