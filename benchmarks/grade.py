"""How fast `derive grade` grades a class, and what the distinct-answer cache and more workers buy.

A synthetic class (benchmarks/synthetic_class.py: most answers right in many spellings, the common
mistakes, a long tail of unique wrong answers, a few empty and unreadable ones) of --students
students answers the ten questions of ASSIGNMENT below (∂E/∂w1..w8, ∂E/∂b1, ∂E/∂b2 on the built-in
two-two-two network). Each configuration grades it from scratch through the library
(derive.grade.runner.run into a fresh temporary OUT, the gradebook and the summary built as the
command builds them), timed from the plan to the last file written:

    cache, --jobs 1            each distinct answer decided once, one worker process
    cache, --jobs 2            two worker processes
    cache, Dask 2 workers      a LocalCluster (processes, 1 thread each) started here, --scheduler
    every answer, --jobs 1     --every-answer: every answer decided
    every answer, --jobs 2

and prints a table (wall seconds, answers per second, decisions made) and the two targets: the cache
at least 10× faster than every answer (--jobs 1), and --jobs 2 at least 1.7× --jobs 1 without the
cache. The time of the reference checks `derive grade` runs before grading is left out: it is the
same in every row.

Run:
    python benchmarks/grade.py                  # 1,000 students × 10 questions (a few minutes)
    python benchmarks/grade.py --students 100   # a quick run
    python benchmarks/grade.py --json
The table (or JSON) goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic_class import make_class, write_csv  # noqa: E402

from derive.grade.assignment import parse_assignment  # noqa: E402
from derive.grade.grading import check_references  # noqa: E402
from derive.grade.outputs import gradebook, write_all  # noqa: E402
from derive.grade.runner import run  # noqa: E402
from derive.grade.submissions import load_submissions  # noqa: E402
from derive.files import parse_toml  # noqa: E402

ASSIGNMENT = """\
network = "two-two-two"
title = "Benchmark: ten gradients of the 2-2-2 network"
syntax = "latex"
credit = { sign = 0.5, "constant-factor" = 0.5, "missing-path" = 0.34 }

[[question]]
id = "w1"
wrt = "w1"
reference = "((outo1 - y1)*outo1*(1 - outo1)*w5 + (outo2 - y2)*outo2*(1 - outo2)*w7)*outh1*(1 - outh1)*x1"
reference_syntax = "sympy"

[[question]]
id = "w2"
wrt = "w2"
reference = "((outo1 - y1)*outo1*(1 - outo1)*w5 + (outo2 - y2)*outo2*(1 - outo2)*w7)*outh1*(1 - outh1)*x2"
reference_syntax = "sympy"

[[question]]
id = "w3"
wrt = "w3"
reference = "((outo1 - y1)*outo1*(1 - outo1)*w6 + (outo2 - y2)*outo2*(1 - outo2)*w8)*outh2*(1 - outh2)*x1"
reference_syntax = "sympy"

[[question]]
id = "w4"
wrt = "w4"
reference = "((outo1 - y1)*outo1*(1 - outo1)*w6 + (outo2 - y2)*outo2*(1 - outo2)*w8)*outh2*(1 - outh2)*x2"
reference_syntax = "sympy"

[[question]]
id = "w5"
wrt = "w5"
reference = '(out_{o1} - y_1)\\, out_{o1} (1 - out_{o1})\\, out_{h1}'

[[question]]
id = "w6"
wrt = "w6"
reference = '(out_{o1} - y_1)\\, out_{o1} (1 - out_{o1})\\, out_{h2}'

[[question]]
id = "w7"
wrt = "w7"
reference = '(out_{o2} - y_2)\\, out_{o2} (1 - out_{o2})\\, out_{h1}'

[[question]]
id = "w8"
wrt = "w8"
reference = '(out_{o2} - y_2)\\, out_{o2} (1 - out_{o2})\\, out_{h2}'

[[question]]
id = "b1"
wrt = "b1"
reference = "((outo1 - y1)*outo1*(1 - outo1)*w5 + (outo2 - y2)*outo2*(1 - outo2)*w7)*outh1*(1 - outh1) + ((outo1 - y1)*outo1*(1 - outo1)*w6 + (outo2 - y2)*outo2*(1 - outo2)*w8)*outh2*(1 - outh2)"
reference_syntax = "sympy"

[[question]]
id = "b2"
wrt = "b2"
reference = "(outo1 - y1)*outo1*(1 - outo1) + (outo2 - y2)*outo2*(1 - outo2)"
reference_syntax = "sympy"
"""
QUESTIONS = [(q, q) for q in ("w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "b1", "b2")]
CONFIGS = [  # (label, jobs, distinct, dask)
    ("cache, --jobs 1", 1, True, False),
    ("cache, --jobs 2", 2, True, False),
    ("cache, Dask LocalCluster 2 workers", None, True, True),
    ("every answer, --jobs 1", 1, False, False),
    ("every answer, --jobs 2", 2, False, False),
]


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def grade_once(assignment, submissions, *, jobs: int = 1, distinct: bool = True, scheduler: str | None = None) -> dict:
    with tempfile.TemporaryDirectory(prefix="derive-bench-grade-") as tmp:
        out = Path(tmp) / "graded"
        start = time.perf_counter()
        store = run(assignment, submissions, out, jobs=jobs, scheduler=scheduler, distinct=distinct)
        try:
            book = gradebook(assignment, store, submissions.problems)
        finally:
            store.close()
        write_all(book, out)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "answers": book.answers, "decided": book.distinct,
            "answers_per_second": book.answers / seconds, "statuses": _statuses(book)}


def _statuses(book) -> dict:
    counts: dict[str, int] = {}
    for grades in book.grades.values():
        for grade in grades:
            counts[grade.outcome["status"]] = counts.get(grade.outcome["status"], 0) + 1
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="time derive grade on a synthetic class")
    parser.add_argument("--students", type=int, default=1000, help="students in the class (default 1,000)")
    parser.add_argument("--seed", type=int, default=1, help="the synthetic class's seed")
    parser.add_argument("--skip", action="append", default=[], metavar="LABEL_PART",
                        help="skip the configurations whose label contains this text (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)

    assignment = parse_assignment(parse_toml(ASSIGNMENT, where="benchmark assignment"), ASSIGNMENT, base=Path("."))
    check_references(assignment, 5.0)  # the key is right (not timed)
    rows = make_class(args.students, args.seed, QUESTIONS)
    with tempfile.TemporaryDirectory(prefix="derive-bench-class-") as tmp:
        path = Path(tmp) / "answers.csv"
        write_csv(rows, path)
        submissions = load_submissions(path, assignment)
    distinct_texts = len({(q, a.strip(), s) for _, q, a, s in rows})
    log(f"{args.students} students × {len(QUESTIONS)} questions = {len(rows)} answers "
        f"({distinct_texts} distinct texts); {os.cpu_count()} cores")

    results = []
    for label, jobs, distinct, dask in CONFIGS:
        if any(part in label for part in args.skip):
            continue
        log(f"{label} …")
        if dask:
            from distributed import LocalCluster

            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
                result = grade_once(assignment, submissions, distinct=distinct, scheduler=cluster.scheduler_address)
        else:
            result = grade_once(assignment, submissions, jobs=jobs, distinct=distinct)
        result["config"] = label
        results.append(result)
        log(f"  {result['seconds']:.1f} s, {result['answers_per_second']:.0f} answers/s, "
            f"{result['decided']} decided, {result['statuses']}")

    by = {r["config"]: r for r in results}
    targets = {}
    if "cache, --jobs 1" in by and "every answer, --jobs 1" in by:
        ratio = by["every answer, --jobs 1"]["seconds"] / by["cache, --jobs 1"]["seconds"]
        targets["cache_speedup"] = {"value": ratio, "target": 10.0, "met": ratio >= 10.0}
    if "every answer, --jobs 1" in by and "every answer, --jobs 2" in by:
        ratio = by["every answer, --jobs 1"]["seconds"] / by["every answer, --jobs 2"]["seconds"]
        targets["jobs2_speedup_uncached"] = {"value": ratio, "target": 1.7, "met": ratio >= 1.7}

    if args.json:
        print(json.dumps({"students": args.students, "questions": len(QUESTIONS), "answers": len(rows),
                          "distinct_texts": distinct_texts, "cores": os.cpu_count(), "results": results,
                          "targets": targets}, indent=2))
        return 0
    print(f"{args.students} students × {len(QUESTIONS)} questions = {len(rows):,} answers, "
          f"{os.cpu_count()} cores")
    print()
    print("| run | decided | wall time | answers/s |")
    print("|---|---:|---:|---:|")
    for r in results:
        print(f"| {r['config']} | {r['decided']:,} | {r['seconds']:.1f} s | {r['answers_per_second']:,.0f} |")
    print()
    names = {"cache_speedup": "cache vs every answer (--jobs 1)",
             "jobs2_speedup_uncached": "--jobs 2 vs --jobs 1 (every answer)"}
    for key, t in targets.items():
        print(f"{names[key]}: {t['value']:.1f}× (target ≥ {t['target']:g}×: {'met' if t['met'] else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
