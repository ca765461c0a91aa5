"""`derive grade`: a class's answers graded into a gradebook, feedback and a summary (derive.grade).

Input shapes (CSV with BOM/CRLF, folders of .toml files), grading each distinct answer once, broken
answers, resuming, an interrupted run, a killed worker, a worker that dies on one answer, a Dask
cluster, bad assignments, --json, and the gradebook's safety against spreadsheet formulas.
Every subprocess has a timeout; the whole file takes well under a minute on two cores.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from derive.errors import InputError
from derive.grade import grading, runner
from derive.grade.assignment import load_assignment
from derive.grade.outputs import gradebook, gradebook_csv, summary
from derive.grade.submissions import load_submissions

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = ROOT / "examples" / "class" / "assignment.toml"

# The example assignment's reference answers (LaTeX unless marked), and a few variants of them.
Q1 = r"(out_{o1} - y_1)\, out_{o1} (1 - out_{o1})\, out_{h1}"  # contains commas (LaTeX thin spaces)
Q2 = r"(out_{o1} - y_1)\, out_{o1} (1 - out_{o1})"
Q1_SYMPY = "(outo1 - y1)*outo1*(1 - outo1)*outh1"
Q2_SYMPY = "(outo1 - y1)*outo1*(1 - outo1)"
Q3_SYMPY = "((outo1 - y1)*outo1*(1 - outo1)*w5 + (outo2 - y2)*outo2*(1 - outo2)*w7)*outh1*(1 - outh1)*x1"
Q4_SYMPY = "(outo1 - y1)"


# --- helpers ---------------------------------------------------------------------------------------

def cli(*args, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "derive", "grade", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=str(ROOT))


def main(capsys, *args) -> tuple[int, str, str]:
    """`derive grade ARGS` in this process (no interpreter to start): (exit code, stdout, stderr)."""
    from derive.cli import main as derive_main

    capsys.readouterr()
    code = derive_main(["grade", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_csv(path: Path, rows, header=("student", "question", "answer")) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    return path


def grade_lib(submissions: Path, out: Path, assignment: Path = ASSIGNMENT, **options):
    """Grade in-process: (the gradebook, its CSV text, the summary)."""
    loaded = load_assignment(assignment)
    subs = load_submissions(submissions, loaded)
    store = runner.run(loaded, subs, out, **options)
    try:
        book = gradebook(loaded, store, subs.problems)
    finally:
        store.close()
    return book, gradebook_csv(book), summary(book)


def table(csv_text: str) -> dict[str, dict[str, str]]:
    """The gradebook as {student: {column: cell}}."""
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    return {row["student"]: row for row in rows}


def results(out: Path) -> list[tuple]:
    """The results table, read only: (key, outcome, attempts) sorted by key."""
    db = sqlite3.connect(f"file:{out / 'grades.sqlite'}?mode=ro", uri=True, timeout=5)
    try:
        return sorted(db.execute("SELECT key, outcome, attempts FROM results"))
    finally:
        db.close()


def count_results(out: Path) -> int:
    path = out / "grades.sqlite"
    if not path.exists():
        return 0
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
        try:
            return db.execute("SELECT count(*) FROM results").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:  # the file exists but the schema is not written yet
        return 0


def big_class(path: Path, students: int = 30) -> Path:
    """`students` × 4 questions, every answer distinct (a constant factor k = the student's number): k = 1 is
    right, others are refuted with the constant-factor diagnosis (half credit)."""
    forms = {"q1": Q1_SYMPY, "q2": Q2_SYMPY, "q3": Q3_SYMPY, "q4": Q4_SYMPY}
    rows = [(f"s{n:03d}", q, f"{n + 1}*{form}", "sympy") for n in range(students) for q, form in forms.items()]
    return write_csv(path, rows, header=("student", "question", "answer", "syntax"))


def wait_for_rows(proc: subprocess.Popen, out: Path, at_least: int, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before {at_least} results were written: "
                        f"{proc.stderr.read() if proc.stderr else ''}")
        rows = count_results(out)
        if rows >= at_least:
            return rows
        time.sleep(0.02)
    pytest.fail(f"no {at_least} results within {timeout} s")


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "derive", "grade", *map(str, args)], cwd=str(ROOT),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the run did not end in time")
    return proc.returncode, err


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(p) for p in task.read_text().split()]
        except OSError:
            pass
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """The big class and its uninterrupted --jobs 2 run: (submissions, OUT)."""
    base = tmp_path_factory.mktemp("big")
    submissions = big_class(base / "big.csv")
    out = base / "reference"
    done = cli(ASSIGNMENT, submissions, "-o", out, "--jobs", 2)
    assert done.returncode == 0, done.stderr
    return submissions, out


# --- 1. CSV encodings ------------------------------------------------------------------------------

def test_csv_bom_crlf_and_quoted_answers_grade_the_same(tmp_path):
    rows = [("alice", "q1", Q1), ("alice", "q2", "(out_{o1} - y_1)\n out_{o1}\n(1 - out_{o1})"),
            ("bob", "q1", "2 " + Q1), ("bob", "q4", "out_{o1} - y_1, 3")]
    plain = write_csv(tmp_path / "plain.csv", rows)
    text = plain.read_text(encoding="utf-8")
    assert "\n out_{o1}\n" in text and '"' in text  # a quoted answer with commas and line breaks
    windows = tmp_path / "windows.csv"
    windows.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8"))
    _, plain_csv, plain_summary = grade_lib(plain, tmp_path / "out-plain")
    _, windows_csv, windows_summary = grade_lib(windows, tmp_path / "out-windows")
    assert windows_csv == plain_csv
    grades = table(plain_csv)
    assert set(grades) == {"alice", "bob"}  # the BOM did not become part of the header or a name
    assert grades["alice"]["q1"] == "2" and grades["alice"]["q2"] == "2"  # comma and line-break answers proven
    assert grades["bob"]["q1"] == "1"  # constant factor: half credit
    assert grades["bob"]["q4"] == "0"  # "a, 3" is not a formula
    assert [q["statuses"] for q in windows_summary["questions"]] == [q["statuses"] for q in plain_summary["questions"]]


# --- 2. students and questions without answers -----------------------------------------------------

def test_students_without_answers_and_a_question_nobody_answered(tmp_path):
    subs = write_csv(tmp_path / "a.csv", [("alice", "q1", Q1), ("alice", "q2", Q2), ("alice", "q4", "out_{o1} - y_1"),
                                          ("empty", "q1", ""), ("bob", "q4", "out_{o1} - y_1")])
    out = tmp_path / "out"
    book, text, data = grade_lib(subs, out)
    from derive.grade.outputs import write_all

    write_all(book, out)
    grades = table(text)
    assert set(grades) == {"alice", "empty", "bob"}
    assert [grades["empty"][q] for q in ("q1", "q2", "q3", "q4", "total")] == ["0"] * 5
    for grade in book.grades["empty"]:
        assert grade.outcome["status"] == "unparsed" and grade.outcome["message"] == "no answer"
    feedback = next((out / "feedback").glob("*-empty.txt")).read_text(encoding="utf-8")
    assert feedback.count("unparsed: no answer") == 4
    # q3: nobody answered
    assert [grades[s]["q3"] for s in grades] == ["0", "0", "0"]
    q3 = next(q for q in data["questions"] if q["id"] == "q3")
    assert q3["share_right"] == 0 and q3["right"] == 0 and q3["statuses"]["unparsed"] == 3
    assert json.loads((out / "summary.json").read_text())["questions"][2]["share_right"] == 0

    # a student who appears only in a folder file with no claims
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "alice.toml").write_text('student = "alice"\n[[claim]]\nquestion = "q4"\nformula = "out_{o1} - y_1"\n')
    (folder / "ghost.toml").write_text('student = "ghost"\n')
    book, text, _ = grade_lib(folder, tmp_path / "out-folder")
    grades = table(text)
    assert set(grades) == {"alice", "ghost"}
    assert [grades["ghost"][q] for q in ("q1", "q2", "q3", "q4", "total")] == ["0"] * 5
    assert all(g.outcome["message"] == "no answer" for g in book.grades["ghost"])


# --- 3. broken answers -----------------------------------------------------------------------------

def test_broken_answers_are_unparsed_with_a_reason(tmp_path):
    nested = "(" * 5000 + "out_{o1}" + ")" * 5000 + " - y_1"
    broken = {"latex": r"\frac{out_{o1}", "unknown": "out_{o1} - zeta_{42}", "hostile": "__import__('os')",
              "nested": nested, "dunder": "().__class__.__bases__[0].__subclasses__()"}
    rows = [(name, "q4", answer) for name, answer in broken.items()]
    rows += [("good", "q1", Q1), ("good", "q4", "out_{o1} - y_1"), ("half", "q4", "2 (out_{o1} - y_1)")]
    subs = write_csv(tmp_path / "a.csv", rows)
    out = tmp_path / "out"
    done = cli(ASSIGNMENT, subs, "-o", out, "--json")
    assert done.returncode == 0, done.stderr
    grades = table((out / "gradebook.csv").read_text(encoding="utf-8"))
    assert grades["good"]["q1"] == "2" and grades["good"]["q4"] == "1" and grades["good"]["total"] == "3"
    assert grades["half"]["q4"] == "0.5"
    db = sqlite3.connect(f"file:{out / 'grades.sqlite'}?mode=ro", uri=True)
    try:
        outcomes = {student: json.loads(outcome) for student, outcome in db.execute(
            "SELECT a.student, r.outcome FROM answers a JOIN results r ON a.key = r.key WHERE a.question = 'q4'")}
    finally:
        db.close()
    for name in broken:
        assert grades[name]["q4"] == "0", name
        assert outcomes[name]["status"] == "unparsed", (name, outcomes[name])
        assert outcomes[name]["message"] and outcomes[name]["message"] != "no answer", name
    assert "unknown name" in outcomes["unknown"]["message"]
    assert "nested" in outcomes["nested"]["message"]
    summary_data = json.loads(done.stdout)
    assert summary_data["questions"][3]["statuses"]["unparsed"] == len(broken)  # only the broken ones


# --- 4. one decision per distinct answer -----------------------------------------------------------

def test_each_distinct_answer_is_decided_once(tmp_path, capsys):
    same_q4 = ["out_{o1} - y_1", "-y_1+out_{o1}", "  out_{o1}-y_{1} ", r"out_{o1} \, - \, y_1", "-1*y_1 + out_{o1}"]
    rows = [(f"s{n}", "q4", answer) for n, answer in enumerate(same_q4)]
    rows += [("s0", "q2", Q2), ("s1", "q2", r"out_{o1}\left(1 - out_{o1}\right)(out_{o1} - y_1)"),
             ("s2", "q2", "2 " + Q2), ("s3", "q2", "(out_{o1}-y_1)*2*out_{o1}*(1-out_{o1})")]
    subs = write_csv(tmp_path / "a.csv", rows)
    once, every = tmp_path / "once", tmp_path / "every"
    first = main(capsys, ASSIGNMENT, subs, "-o", once)
    second = main(capsys, ASSIGNMENT, subs, "-o", every, "--every-answer")
    assert first[0] == 0, first[2]
    assert second[0] == 0, second[2]
    a = json.loads((once / "summary.json").read_text())
    b = json.loads((every / "summary.json").read_text())
    assert a["answers"] == b["answers"] == 5 * 4
    # distinct: q4 one form, q2 two forms (right, twice), q1 and q3 "no answer" once each, q2 "no answer" once
    assert a["decided"] == 1 + 2 + 1 + 1 + 1, a["decided"]
    assert a["decided"] < a["answers"]
    assert b["decided"] == b["answers"]
    assert (once / "gradebook.csv").read_bytes() == (every / "gradebook.csv").read_bytes()
    grades = table((once / "gradebook.csv").read_text())
    assert [grades[f"s{n}"]["q4"] for n in range(5)] == ["1"] * 5
    assert [grades[f"s{n}"]["q2"] for n in range(4)] == ["2", "2", "1", "1"]
    assert len(results(once)) == a["decided"] and len(results(every)) == b["answers"]


# --- 5. folder submissions -------------------------------------------------------------------------

def test_folder_submissions_grade_like_the_csv(tmp_path):
    answers = {"alice": [("q1", Q1, None), ("q4", "out_{o1} - y_1", None)],
               "bob": [("q3", Q3_SYMPY, "sympy"), ("q2", "3 " + Q2, None), ("q4", "y_1", None)],
               "carol": [("q1", "nonsense(", None)]}
    folder = tmp_path / "folder"
    folder.mkdir()
    rows = []
    for n, (student, claims) in enumerate(answers.items()):
        lines = [f'student = "{student}"']
        for question, formula, syntax in claims:
            lines += ["[[claim]]", f'question = "{question}"', f"formula = '{formula}'"]
            if syntax:
                lines.append(f'syntax = "{syntax}"')
            rows.append((student, question, formula, syntax or ""))
        (folder / f"file{n}.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    subs = write_csv(tmp_path / "a.csv", rows, header=("student", "question", "answer", "syntax"))
    from_folder = grade_lib(folder, tmp_path / "out-folder")
    from_csv = grade_lib(subs, tmp_path / "out-csv")
    assert from_folder[1] == from_csv[1]
    grades = table(from_csv[1])
    assert grades["alice"]["total"] == "3" and grades["bob"]["q3"] == "3" and grades["bob"]["q2"] == "1"
    assert grades["carol"]["total"] == "0"


# --- 6. resume -------------------------------------------------------------------------------------

def test_resume(tmp_path, capsys):
    rows = [("alice", "q1", Q1), ("alice", "q4", "out_{o1} - y_1"), ("bob", "q1", "3 " + Q1), ("bob", "q2", "y_1")]
    subs = write_csv(tmp_path / "a.csv", rows)
    out = tmp_path / "out"
    first = main(capsys, ASSIGNMENT, subs, "-o", out)
    assert first[0] == 0, first[2]
    before, book = results(out), (out / "gradebook.csv").read_bytes()
    code, _, err = main(capsys, ASSIGNMENT, subs, "-o", out)
    assert code == 2
    assert "--resume" in err and "grades.sqlite" in err
    assert results(out) == before
    resumed = cli(ASSIGNMENT, subs, "-o", out, "--resume")  # a new process, as a resumed run is
    assert resumed.returncode == 0, resumed.stderr
    after = results(out)
    assert after == before  # same rows, same outcomes (even their timings), same attempts: nothing re-decided
    assert all(attempts == 1 for _, _, attempts in after)
    assert (out / "gradebook.csv").read_bytes() == book
    changed = write_csv(tmp_path / "b.csv", rows + [("carol", "q4", "out_{o1}")])
    code, _, err = main(capsys, ASSIGNMENT, changed, "-o", out, "--resume")
    assert code == 2
    assert "submissions" in err and "changed" in err
    assert results(out) == before
    assert (out / "gradebook.csv").read_bytes() == book
    code, _, err = main(capsys, ASSIGNMENT, subs, "-o", tmp_path / "nothing", "--resume")
    assert code == 2 and "does not exist" in err


# --- 7. interrupt ----------------------------------------------------------------------------------

def test_interrupt_then_resume(tmp_path, big):
    submissions, reference = big
    out = tmp_path / "out"
    proc = start(ASSIGNMENT, submissions, "-o", out, "--jobs", 2)
    try:
        seen = wait_for_rows(proc, out, 3)
        proc.send_signal(signal.SIGINT)
        code, err = finish(proc, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 130, err
    assert "interrupted" in err
    kept = results(out)
    total = len(results(reference))
    assert seen <= len(kept) < total, (seen, len(kept), total)
    for _, outcome, attempts in kept:
        assert attempts == 1
        assert json.loads(outcome)["status"] in ("proven", "refuted")  # intact: whole outcomes, no error rows
    assert not (out / "gradebook.csv").exists()
    resumed = cli(ASSIGNMENT, submissions, "-o", out, "--jobs", 2, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    final = results(out)
    assert len(final) == total
    assert set(kept) <= set(final)  # the rows of the interrupted run were kept as they were, not decided again
    assert all(attempts == 1 for _, _, attempts in final)
    assert (out / "gradebook.csv").read_bytes() == (reference / "gradebook.csv").read_bytes()


# --- 8. a killed worker ----------------------------------------------------------------------------

def test_killed_worker(tmp_path, big):
    submissions, reference = big
    out = tmp_path / "out"
    proc = start(ASSIGNMENT, submissions, "-o", out, "--jobs", 2)
    killed = None
    try:
        wait_for_rows(proc, out, 3)
        own = cmdline(proc.pid)
        workers = [pid for pid in children(proc.pid) if cmdline(pid) == own]  # forked pool workers
        assert workers, "no worker processes found"
        killed = workers[0]
        os.kill(killed, signal.SIGKILL)
        code, err = finish(proc, timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, err
    assert (out / "gradebook.csv").read_bytes() == (reference / "gradebook.csv").read_bytes()
    final = results(out)
    assert len(final) == len(results(reference))
    assert all(json.loads(outcome)["status"] in ("proven", "refuted") for _, outcome, _ in final)
    assert all(attempts in (1, 2) for _, _, attempts in final)


# --- 9. a worker that dies on one answer -----------------------------------------------------------

POISON = "3 (out_{o1} - y_1)"  # a normal form of its own: no other answer shares its key


def test_an_answer_that_kills_its_worker_is_retried_once_then_error(tmp_path, monkeypatch):
    original = grading.decide

    def deadly(source, question_id, answer, syntax, budget, seed=0):
        if answer == POISON:
            os._exit(1)
        return original(source, question_id, answer, syntax, budget, seed)

    monkeypatch.setattr(grading, "decide", deadly)  # before the pool forks: the workers inherit it
    rows = [("alice", "q1", Q1), ("alice", "q4", POISON), ("bob", "q4", "out_{o1} - y_1"), ("bob", "q2", "2 " + Q2),
            ("carol", "q2", Q2), ("carol", "q1", "y_1")]
    subs = write_csv(tmp_path / "a.csv", rows)
    out = tmp_path / "out"
    book, text, _ = grade_lib(subs, out, jobs=2)
    poisoned = book.grades["alice"][3]
    assert poisoned.answer == POISON
    assert poisoned.outcome["status"] == "error"
    assert "died" in poisoned.outcome["message"] and "worker" in poisoned.outcome["message"]
    db = sqlite3.connect(f"file:{out / 'grades.sqlite'}?mode=ro", uri=True)
    try:
        attempts = dict(db.execute("SELECT answer, attempts FROM results"))
    finally:
        db.close()
    assert attempts[POISON] == 2
    grades = table(text)
    assert grades["alice"]["q1"] == "2" and grades["alice"]["q4"] == "0"
    assert grades["bob"]["q4"] == "1" and grades["bob"]["q2"] == "1"
    assert grades["carol"]["q2"] == "2" and grades["carol"]["q1"] == "0"
    statuses = {(s, g.question): g.outcome["status"] for s, gs in book.grades.items() for g in gs}
    assert [k for k, v in statuses.items() if v == "error"] == [("alice", "q4")]


# --- 10. Dask --------------------------------------------------------------------------------------

def test_dask_cluster_grades_like_local_processes(tmp_path):
    import distributed  # installed by make setup (the test extra): never skipped

    rows = [("alice", "q1", Q1), ("alice", "q4", "out_{o1} - y_1"), ("bob", "q1", "2 " + Q1),
            ("bob", "q3", "w_{5}"), ("carol", "q2", r"\frac{"), ("carol", "q4", "-y_1+out_{o1}")]
    subs = write_csv(tmp_path / "a.csv", rows)
    _, local, _ = grade_lib(subs, tmp_path / "local", jobs=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        _, remote, data = grade_lib(subs, tmp_path / "dask", scheduler=cluster.scheduler_address)
    assert remote == local
    assert data["decided"] == len(results(tmp_path / "dask"))
    grades = table(remote)
    assert grades["alice"]["total"] == "3" and grades["bob"]["q1"] == "1" and grades["carol"]["q4"] == "1"


def test_unreachable_scheduler_is_bad_input(tmp_path):
    subs = write_csv(tmp_path / "a.csv", [("alice", "q4", "out_{o1} - y_1")])
    start_time = time.monotonic()
    with pytest.raises(InputError, match="cannot reach the Dask scheduler"):
        grade_lib(subs, tmp_path / "out", scheduler="tcp://127.0.0.1:1")
    assert time.monotonic() - start_time <= 15


# --- 11. bad assignments ---------------------------------------------------------------------------

GOOD_QUESTION = '[[question]]\nid = "q4"\npoints = 1\nwrt = "outo1"\n'


@pytest.mark.parametrize("case, text, expected", [
    ("refuted-reference", GOOD_QUESTION + '[[question]]\nid = "q-wrong"\nwrt = "w5"\n'
     'reference = "2*(outo1 - y1)*outo1*(1 - outo1)*outh1"\nreference_syntax = "sympy"\n',
     ["q-wrong", "reference", "refuted"]),
    ("unknown-diagnosis", 'credit = { "off-by-one-universe" = 0.5 }\n' + GOOD_QUESTION,
     ["off-by-one-universe", "not a diagnosis"]),
    ("duplicate-id", GOOD_QUESTION + GOOD_QUESTION, ["q4", "twice"]),
    ("zero-points", GOOD_QUESTION.replace("points = 1", "points = 0"), ["points", "above 0"]),
    ("negative-points", GOOD_QUESTION.replace("points = 1", "points = -2"), ["points", "above 0"]),
])
def test_bad_assignments_are_refused(tmp_path, capsys, case, text, expected):
    assignment = tmp_path / "hw.toml"
    assignment.write_text('network = "two-two-two"\n' + text, encoding="utf-8")
    subs = write_csv(tmp_path / "a.csv", [("alice", "q4", "out_{o1} - y_1")])
    code, _, err = main(capsys, assignment, subs, "-o", tmp_path / "out")
    assert code == 2, (case, code, err)
    assert err.startswith("derive: error:") and len(err.strip().splitlines()) == 1, err
    for word in expected:
        assert word in err, (case, word, err)
    assert not (tmp_path / "out" / "gradebook.csv").exists()


def test_output_that_is_a_file_is_refused(tmp_path, capsys):
    subs = write_csv(tmp_path / "a.csv", [("alice", "q4", "out_{o1} - y_1")])
    out = tmp_path / "out"
    out.write_text("keep me", encoding="utf-8")
    code, _, err = main(capsys, ASSIGNMENT, subs, "-o", out)
    assert code == 2, err
    assert "must be a folder" in err and str(out) in err
    assert out.read_text(encoding="utf-8") == "keep me"


# --- 12. --json ------------------------------------------------------------------------------------

def test_json_summary(tmp_path):
    rows = [("alice", "q1", Q1), ("alice", "q2", Q2), ("alice", "q4", "out_{o1} - y_1"),
            ("bob", "q1", "2 " + Q1), ("bob", "q4", "out_{o1} - y_1"), ("carol", "q2", "-" + Q2),
            ("dan", "q3", Q3_SYMPY, "sympy"), ("erin", "q1", "2 " + Q1)]
    subs = write_csv(tmp_path / "a.csv", [r if len(r) == 4 else (*r, "") for r in rows],
                     header=("student", "question", "answer", "syntax"))
    done = cli(ASSIGNMENT, subs, "-o", tmp_path / "out", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)  # exactly one JSON object, nothing else on stdout
    assert isinstance(data, dict)
    assert data["students"] == 5
    assert data["answers"] == 20 and data["decided"] < data["answers"]
    assert len(data["histogram"]) == 10 and sum(b["count"] for b in data["histogram"]) == data["students"]
    questions = {q["id"]: q for q in data["questions"]}
    assert list(questions) == ["q1", "q2", "q3", "q4"]
    for q in questions.values():
        assert {"share_right", "diagnoses", "common_wrong"} <= set(q)
        assert 0 <= q["share_right"] <= 1
    assert questions["q1"]["share_right"] == pytest.approx(1 / 5)
    assert questions["q1"]["diagnoses"] == {"constant-factor": 2}
    assert {"answer": "2 " + " ".join(Q1.split()), "count": 2} in questions["q1"]["common_wrong"]
    assert questions["q2"]["diagnoses"].get("sign") == 1
    assert questions["q3"]["share_right"] == pytest.approx(1 / 5)
    assert questions["q4"]["share_right"] == pytest.approx(2 / 5)
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["histogram"] == data["histogram"]


# --- 13. gradebook safety ---------------------------------------------------------------------------

def test_formula_names_are_neutralised_and_feedback_names_are_slugs(tmp_path):
    hostile = '=HYPERLINK("x")'
    names = [hostile, "+1 plus", "-minus", "@at", "../../etc/passwd", "Zoë Ünïcødé", "a/b\\c:d*e?f", "张伟"]
    rows = [(name, "q4", "out_{o1} - y_1") for name in names]
    subs = write_csv(tmp_path / "a.csv", rows)
    out = tmp_path / "out"
    done = cli(ASSIGNMENT, subs, "-o", out)
    assert done.returncode == 0, done.stderr
    text = (out / "gradebook.csv").read_text(encoding="utf-8")
    cells = [row[0] for row in csv.reader(io.StringIO(text))][1:]
    assert "'" + hostile in cells
    assert hostile not in cells
    for cell in cells:
        assert cell[:1] not in ("=", "+", "-", "@"), cell
    assert {"'+1 plus", "'-minus", "'@at"} <= set(cells)
    files = sorted(p.name for p in (out / "feedback").iterdir())
    assert len(files) == len(names)
    for name in files:
        assert re.fullmatch(r"[A-Za-z0-9-]+\.txt", name), name
    assert not (tmp_path / "etc").exists()
    assert all(p.parent == out / "feedback" for p in (out / "feedback").iterdir())


# --- bugs found while writing these tests: bad input must be exit 2, never 3 ------------------------

@pytest.mark.parametrize("case", ["parent-is-a-file", "store-not-a-database", "store-is-a-folder",
                                  "scheduler-without-port", "scheduler-unknown-scheme"])
def test_bad_output_or_scheduler_is_bad_input_not_a_bug(tmp_path, capsys, case):
    """Each of these is the user's input, so exit 2; the grade code currently lets an exception through
    (exit 3, "internal error") for every case: see the report."""
    subs = write_csv(tmp_path / "a.csv", [("alice", "q4", "out_{o1} - y_1")])
    out, extra = tmp_path / "out", []
    if case == "parent-is-a-file":  # runner.run: out.mkdir raises NotADirectoryError
        (tmp_path / "afile").write_text("x")
        out = tmp_path / "afile" / "sub"
    elif case == "store-not-a-database":  # store.Store: sqlite3.DatabaseError "file is not a database"
        out.mkdir()
        (out / "grades.sqlite").write_text("not a database")
        extra = ["--resume"]
    elif case == "store-is-a-folder":  # store.Store: sqlite3.OperationalError "unable to open database file"
        (out / "grades.sqlite").mkdir(parents=True)
        extra = ["--resume"]
    elif case == "scheduler-without-port":  # runner._on_cluster: ValueError from distributed, not caught
            extra = ["--scheduler", "nonsense"]
    else:
            extra = ["--scheduler", "http://127.0.0.1:1"]
    code, _, err = main(capsys, ASSIGNMENT, subs, "-o", out, *extra)
    assert "internal error" not in err, err
    assert code == 2, (code, err)


def test_histogram_bins_totals_on_a_boundary_in_the_bin_they_start(tmp_path):
    """A total on a bin's lower edge belongs to that bin ([from, to), the last closed). outputs.histogram
    divides by a float width: 0.3 / 0.1 == 2.9999999999999996, so 0.3 of 1 point lands in the 0.2–0.3 bin."""
    from derive.grade.outputs import histogram

    assert [b["count"] for b in histogram([0.0, 1.0, 0.5], 1.0)] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    bins = histogram([0.3, 0.6, 0.7], 1.0)
    placed = {b["from"]: b["count"] for b in bins if b["count"]}
    assert placed == {0.3: 1, 0.6: 1, 0.7: 1}, placed
