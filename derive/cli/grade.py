"""`derive grade`: a class's answers to an assignment, graded into a gradebook, feedback and a summary."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from pathlib import Path

from derive.cli.streams import emit_json
from derive.errors import InputError

MAX_JOBS = 256


def jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of worker processes, got {text!r}") from None
    if not 1 <= value <= MAX_JOBS:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_JOBS}")
    return value


def add_grade(commands, search_options) -> None:
    p = commands.add_parser(
        "grade",
        help="grade a class: an assignment's answers into a gradebook, feedback and a class summary",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Grade every student's answer to every question of an assignment. Each
            distinct answer is decided once (answers are compared after parsing:
            spacing, LaTeX spelling and the order of terms do not matter) and the
            decisions run on --jobs worker processes, or on a Dask cluster with
            --scheduler. Results go to OUT/grades.sqlite as they come: an
            interrupted run continues with --resume and decides nothing twice.

            The assignment (TOML) names the network and lists its questions:

              network = "two-two-two"
              title = "Homework 3"
              credit = { sign = 0.5 }          # partial credit by diagnosis
              [[question]]
              id = "q1"
              points = 2
              wrt = "w5"                       # the answer is dE/dw5
              reference = "(outo1 - y1)*outo1*(1 - outo1)*outh1"

            SUBMISSIONS is a CSV file (student,question,answer[,syntax]; UTF-8,
            with or without a BOM) or a folder of per-student .toml files with
            [[claim]] tables (question = "q1", formula = "...").

            OUT receives gradebook.csv (points per question and the total),
            feedback/NNNN-name.txt for each student, summary.txt and
            summary.json (per question: the share right, the mistakes by
            frequency, the most common wrong answers; a histogram of totals),
            and with --pdf the feedback and the summary as PDF.

            examples:
              derive grade examples/class/assignment.toml examples/class/answers.csv -o graded/
              derive grade hw3.toml submissions/ -o graded/ --jobs 2 --pdf
              derive grade hw3.toml answers.csv -o graded/ --resume
              derive grade hw3.toml answers.csv -o graded/ --scheduler tcp://10.0.0.5:8786
            """
        ),
    )
    p.add_argument("assignment", metavar="ASSIGNMENT", help="the assignment (.toml)")
    p.add_argument("submissions", metavar="SUBMISSIONS", help="answers.csv, or a folder of per-student .toml files")
    p.add_argument("-o", "--output", metavar="OUT", required=True, help="the folder to write into (made if missing)")
    p.add_argument("--jobs", type=jobs, default=1, help="worker processes on this machine (default 1)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="a Dask scheduler (tcp://host:8786) whose workers decide the answers (pip install 'derive[cluster]')")
    p.add_argument("--resume", action="store_true", help="continue the run in OUT, deciding only what it has not")
    p.add_argument("--every-answer", action="store_true",
                   help="decide every answer, not each distinct answer once (for comparison; slower)")
    p.add_argument("--pdf", action="store_true", help="also write each student's feedback and the summary as PDF")
    search_options(p)
    p.add_argument("--json", action="store_true", help="print the class summary as one JSON object")
    p.set_defaults(run=run_grade, command="grade")


def run_grade(args) -> int:
    from derive.cli import EXIT_OK
    from derive.cli.commands import progress_bar
    from derive.files import refuse_overwriting_inputs
    from derive.grade.assignment import load_assignment
    from derive.grade.grading import check_references
    from derive.grade.outputs import gradebook, summary, summary_text, write_all
    from derive.grade.runner import run
    from derive.grade.submissions import load_submissions

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise InputError("must be a folder", where=str(out))
    assignment = load_assignment(args.assignment)
    submissions = load_submissions(args.submissions, assignment)
    planned = ["gradebook.csv", "summary.txt", "summary.json", "summary.tex", "summary.pdf", "grades.sqlite"]
    refuse_overwriting_inputs([str(out / name) for name in planned], [args.assignment, args.submissions])
    feedback = out / "feedback"
    if Path(args.submissions).resolve() == feedback.resolve():
        raise InputError("the submissions folder cannot be OUT/feedback, where feedback is written",
                         where=args.submissions)
    check_references(assignment, args.budget)
    try:
        store = run(assignment, submissions, out, jobs=args.jobs, scheduler=args.scheduler,
                    distinct=not args.every_answer, resume=args.resume, budget=args.budget, seed=args.seed,
                    progress=lambda total: progress_bar(total, "grading"))
    except KeyboardInterrupt:
        print(f"derive: grading stopped; every decision so far is in {out / 'grades.sqlite'}: the same command "
              "with --resume continues it", file=sys.stderr)
        raise
    try:
        book = gradebook(assignment, store, submissions.problems)
    finally:
        store.close()
    written = write_all(book, out)
    if args.pdf:
        from derive.grade.pdf import write_pdfs
        from derive.report.tex import Terminated

        try:
            written.update(write_pdfs(book, out, lang=getattr(args, "lang", "en")))
        except Terminated:  # TeX's process group is stopped by now; the text outputs are written
            print("derive: terminated while TeX compiled the feedback; TeX was stopped", file=sys.stderr)
            raise SystemExit(143) from None
    if args.json:
        emit_json({**summary(book), "written": written})
    else:
        text = summary_text(book)
        print(text, end="")
        print(f"wrote {written['gradebook']}, {written['summary']} and feedback for {len(book.grades)} students "
              f"in {written['feedback']}{os.sep}")
        if "summary_pdf" in written:
            print(f"wrote {written['summary_pdf']} and the feedback as PDF")
    return EXIT_OK

