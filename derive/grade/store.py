"""A grading run on disk: SQLite in OUT/grades.sqlite, written as results come, so nothing is lost.

Tables: `meta` (the digests of the assignment and the submissions the run grades), `answers`
(each student's answer to each question, and the key of its normal form), `results` (one row
per key: the outcome as JSON, the attempts it took). A result is committed as soon as it
arrives; an interrupted run (SIGINT, a killed worker, a lost machine) resumes with the keys
that have no row, so no answer is decided twice. The serve command (issue 15) reads the same
schema.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Iterable

from derive.errors import InputError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS answers (
    student TEXT NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL, syntax TEXT,
    key TEXT NOT NULL, PRIMARY KEY (student, question));
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY, question TEXT NOT NULL, answer TEXT NOT NULL, syntax TEXT,
    outcome TEXT NOT NULL, attempts INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS answers_key ON answers (key);
"""
VERSION = "1"


class Store:
    def __init__(self, path: Path, threads: bool = False):
        """`threads`: the connection is used from several threads (the server's), one writer at a time."""
        self.path = path
        try:
            self.db = sqlite3.connect(str(path), timeout=30, check_same_thread=not threads)
            self.db.execute("PRAGMA journal_mode=WAL")  # a reader (serve) never blocks the run
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.Error as exc:  # not a database, a folder, a read-only place
            raise InputError(f"is not a grading database derive can use ({exc})", where=str(path)) from None

    @classmethod
    def open(cls, out: Path, digests: dict[str, str], resume: bool) -> "Store":
        """The run's database in `out`: new, or (with resume) the one a run of the same inputs left."""
        path = out / "grades.sqlite"
        exists = path.exists()
        if exists and not resume:
            raise InputError(f"{path} holds a grading run already: --resume continues it, or choose another -o")
        if resume and not exists:
            raise InputError(f"--resume: {path} does not exist (no run to continue)")
        store = cls(path)
        if exists:
            recorded = dict(store.db.execute("SELECT key, value FROM meta"))
            wanted = {**digests, "version": VERSION}
            changed = [k for k, v in wanted.items() if recorded.get(k) != v]
            if changed:
                store.close()
                raise InputError(f"{path} is a run of other inputs ({', '.join(changed)} changed): "
                                 "grade them into another -o")
        else:
            with store.db:
                store.db.executemany("INSERT INTO meta VALUES (?, ?)", [*digests.items(), ("version", VERSION)])
        return store

    def add_answers(self, rows: Iterable[tuple[str, str, str, str | None, str]]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)", rows)

    def done(self) -> set[str]:
        return {key for (key,) in self.db.execute("SELECT key FROM results")}

    def record(self, key: str, question: str, answer: str, syntax: str | None, outcome: dict, attempts: int) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?)",
                            (key, question, answer, syntax, json.dumps(outcome, default=str), attempts))

    def outcomes(self) -> dict[str, dict]:
        return {key: json.loads(outcome) for key, outcome in self.db.execute("SELECT key, outcome FROM results")}

    def attempts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT key, attempts FROM results"))

    def answers(self) -> list[tuple[str, str, str, str | None, str]]:
        return list(self.db.execute("SELECT student, question, answer, syntax, key FROM answers "
                                    "ORDER BY student, question"))

    def close(self) -> None:
        self.db.close()
