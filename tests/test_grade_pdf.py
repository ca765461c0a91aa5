"""derive grade --pdf: each student's feedback and the class summary as PDF (derive/grade/pdf.py).

A small class is graded in-process once; its hostile name and answer must come out of the
PDFs literally, and without TeX the LaTeX sources are still written and the failure said.
"""

from __future__ import annotations

import csv
import subprocess
from pathlib import Path

import pytest

from derive.grade import outputs
from derive.grade.assignment import load_assignment
from derive.grade.pdf import feedback_context, histogram_axis, summary_context, write_pdfs
from derive.report.render import render
from derive.grade.runner import run
from derive.grade.submissions import load_submissions

ROOT = Path(__file__).resolve().parent.parent
HOSTILE_NAME = "Eve \\input{/etc/passwd} $x^2$ & 100%"
HOSTILE_ANSWER = "}{\\write18{id}"
ROWS = [
    ("Alice", "q1", "(out_{o1} - y_1)\\, out_{o1} (1 - out_{o1})\\, out_{h1}", ""),
    ("Alice", "q3", "(outo1 - y1)*outo1*(1 - outo1)*w5*outh1*(1 - outh1)*x1", "sympy"),
    ("Alice", "q4", "out_{o1} - y_1", ""),
    ("Bob", "q1", "(y_1 - out_{o1})\\, out_{o1} (1 - out_{o1})\\, out_{h1}", ""),
    ("Bob", "q2", HOSTILE_ANSWER, ""),
    (HOSTILE_NAME, "q1", HOSTILE_ANSWER, ""),
    (HOSTILE_NAME, "q4", "2*(out_{o1} - y_1)", ""),
]


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    folder = tmp_path_factory.mktemp("class")
    with open(folder / "answers.csv", "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["student", "question", "answer", "syntax"])
        writer.writerows(ROWS)
    assignment = load_assignment(ROOT / "examples" / "class" / "assignment.toml")
    submissions = load_submissions(folder / "answers.csv", assignment)
    store = run(assignment, submissions, folder / "graded", jobs=1)
    try:
        return outputs.gradebook(assignment, store, submissions.problems)
    finally:
        store.close()


def _text(pdf: Path) -> str:
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return " ".join(text.split())


def test_the_sources_escape_every_user_string(book):
    names = outputs.feedback_names(book)
    tex = render("grade-feedback", feedback_context(book, HOSTILE_NAME))
    assert "\\input{" not in tex and "\\write18{" not in tex
    assert "Eve \\textbackslash{}input\\{/etc/passwd\\} \\$x\\textasciicircum{}2\\$ \\& 100\\%" in tex
    summary_tex = render("grade-summary", summary_context(book))
    assert "\\write18{" not in summary_tex and "\\textbackslash{}\\allowbreak{}write18\\{id\\}" in summary_tex
    assert "ymin=0, ymax=" in summary_tex
    assert names[HOSTILE_NAME].startswith("0003-")
    # the Chinese labels render too (compiled by XeLaTeX, not here: it takes longer)
    assert "Bob 的反馈" in render("grade-feedback", feedback_context(book, "Bob", lang="zh"))


def test_the_histogram_axis_never_collapses():
    empty = histogram_axis([{"from": i, "to": i + 1, "count": 0} for i in range(10)])
    assert empty["ymax"] >= 1 and empty["ystep"] >= 1
    assert empty["points"][-1] == (10, 0) and len(empty["points"]) == 11 and empty["edges"][0] == 0
    full = histogram_axis([{"from": i, "to": i + 1, "count": 30 * i} for i in range(10)])
    assert full["ymax"] > 270


def test_feedback_and_summary_pdfs_show_hostile_text_literally(book, tmp_path):
    written = write_pdfs(book, tmp_path, lang="en")
    assert written["summary_pdf"] == str(tmp_path / "summary.pdf")
    assert written["feedback_pdf"] == str(tmp_path / "feedback")
    assert "pdf_message" not in written
    names = outputs.feedback_names(book)
    assert sorted(p.stem for p in (tmp_path / "feedback").glob("*.pdf")) == sorted(names.values())
    for pdf in [tmp_path / "summary.pdf", *(tmp_path / "feedback").glob("*.pdf")]:
        assert pdf.read_bytes().startswith(b"%PDF"), pdf
        assert pdf.with_suffix(".tex").exists()
    eve = _text(tmp_path / "feedback" / f"{names[HOSTILE_NAME]}.pdf")
    assert HOSTILE_NAME in eve and HOSTILE_ANSWER in eve
    assert "Total: 0.5 of 8 points" in eve and "not read" in eve and "The correct formula: outo1 - y1" in eve
    alice = _text(tmp_path / "feedback" / f"{names['Alice']}.pdf")
    assert "Feedback for Alice" in alice and "Mistake: the path through" in alice and "proven" in alice
    summary = _text(tmp_path / "summary.pdf")
    assert "3 students, 12 answers" in summary and "total points" in summary  # the histogram's axis label
    assert HOSTILE_ANSWER in summary and "Mistakes by frequency" in summary and "sign flipped" in summary
    assert not (tmp_path / "PWNED").exists()


def test_without_tex_the_sources_are_written_and_the_failure_said(book, tmp_path, monkeypatch):
    empty = tmp_path / "no-tex"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    stale = tmp_path / "feedback" / "0001-Alice.pdf"
    stale.parent.mkdir()
    stale.write_bytes(b"%PDF an older run's")
    said = []
    written = write_pdfs(book, tmp_path, lang="en", warn=said.append)
    assert "summary_pdf" not in written and "feedback_pdf" not in written
    assert "no TeX engine" in written["pdf_message"] and len(said) == 1 and "apt-get install" in said[0]
    assert (tmp_path / "summary.tex").exists() and not (tmp_path / "summary.pdf").exists()
    assert len(list((tmp_path / "feedback").glob("*.tex"))) == 3 and not list((tmp_path / "feedback").glob("*.pdf"))
