"""The server's SQLite file: every submission, and the grades `derive grade` would give.

Answers to the served assignment go into the tables of derive.grade.store (answers: each
student's latest answer to each question; results: the outcome of each distinct answer), so
the teacher's gradebook is derive.grade's, from the same code and schema. A `submissions`
table logs every check (time, student, question or network, formula, verdict) for the
teacher's submissions page and for counting what a load test sent.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

from derive.grade.assignment import Assignment
from derive.grade.store import VERSION, Store

LOG = """
CREATE TABLE IF NOT EXISTS submissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, student TEXT NOT NULL, target TEXT NOT NULL,
    formula TEXT NOT NULL, syntax TEXT NOT NULL, verdict TEXT NOT NULL, diagnosis TEXT);
"""


class Records:
    def __init__(self, path: Path, assignment: Assignment | None):
        self.path = Path(path)
        self.store = Store(self.path, threads=True)
        self.store.db.executescript(LOG)
        self.lock = threading.Lock()
        self.assignment = assignment
        if assignment is not None:
            with self.lock, self.store.db:
                self.store.db.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)",
                                          [("assignment", assignment.source.digest), ("version", VERSION),
                                           ("served", "1")])

    def record(self, student: str, request: dict, result: dict) -> None:
        """Log a check; an answer to a question also becomes the student's answer and a graded outcome."""
        target = request.get("question") or request.get("network", "")
        verdict = result.get("verdict", "error")
        diagnosis = result.get("diagnosis")
        with self.lock, self.store.db:
            self.store.db.execute(
                "INSERT INTO submissions (time, student, target, formula, syntax, verdict, diagnosis) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (time.time(), student, target, request["formula"], request["syntax"], verdict, diagnosis))
        if request.get("question") is None or not student:
            return
        key = hashlib.sha256(f"served\0{request['question']}\0{request['syntax']}\0{request['formula']}".encode(
            "utf-8", "surrogatepass")).hexdigest()[:32]
        outcome = {"status": verdict if verdict in ("proven", "refuted", "undecided", "unparsed") else "error",
                   "diagnosis": diagnosis, "message": result.get("message"), "detail": result}
        with self.lock:
            self.store.add_answers([(student, request["question"], request["formula"], request["syntax"], key)])
            self.store.record(key, request["question"], request["formula"], request["syntax"], outcome, 1)

    def submissions(self, limit: int = 500) -> list[dict]:
        rows = self.store.db.execute("SELECT time, student, target, formula, syntax, verdict, diagnosis FROM "
                                     "submissions ORDER BY id DESC LIMIT ?", (limit,))
        names = ("time", "student", "target", "formula", "syntax", "verdict", "diagnosis")
        return [dict(zip(names, row)) for row in rows]

    def count(self) -> int:
        return self.store.db.execute("SELECT COUNT(*) FROM submissions").fetchone()[0]

    def close(self) -> None:
        self.store.close()

