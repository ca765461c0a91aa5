"""Reports from strangers' files (issue 9): sandboxed templates, outputs never over inputs,
atomic writes with the umask's mode, TeX killed as a process group on a timeout or SIGTERM,
no stale PDF after a failure, and every `[latex]` name that is kept as math compiles.

Real TeX runs here; nothing skips.
"""

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sympy as sp
from hypothesis import given, settings, strategies as st

from derive.cli import main
from derive.report.render import environment
from derive.report.tex import compile_pdf
from derive.texsafe import math_or_text
from derive.texsafe import is_safe_math, symbol_latex

ROOT = Path(__file__).resolve().parent.parent
LOOP = "\\documentclass{article}\\begin{document}\\VAR{title}\n\\def\\x{\\x}\\x\n\\end{document}\n"


def run_cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


def derive_process(*args: str, tmp: Path, **env) -> subprocess.Popen:
    """`python -m derive …` with its own TMPDIR, so its `derive-report-*` directories are ours to see."""
    environ = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT), **env}
    return subprocess.Popen([sys.executable, "-m", "derive", *args], cwd=tmp, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def processes() -> dict[int, tuple[str, int, int]]:
    """pid → (command name, parent pid, process group) for every process, from /proc/*/stat."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        found[int(stat.parent.name)] = (name, int(fields[1]), int(fields[2]))
    return found


def tex_processes_in(directory: Path) -> list[int]:
    """Processes working inside `directory` (latexmk and the engines run in derive-report-*)."""
    alive = []
    for cwd in Path("/proc").glob("[0-9]*/cwd"):
        try:
            if os.readlink(cwd).startswith(str(directory)):
                alive.append(int(cwd.parent.name))
        except OSError:
            continue
    return alive


def wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


# ---------------------------------------------------------------------------
# 1. Templates run in Jinja's sandbox; every fault is exit 2 with the line
# ---------------------------------------------------------------------------

HEAD = "\\documentclass{article}\n\\begin{document}\n"


@pytest.mark.parametrize("body, what", [
    ("\\VAR{ cycler.__init__.__globals__.os.popen('touch PWNED').read() }", "not allowed"),
    ("\\VAR{ t.__class__.__init__.__globals__ }", "not allowed"),
    ("\\VAR{ network.counts.update({'x': 1}) }", "not allowed"),
    ("\\VAR{ 'x' * 100000000 }", "too long"),
    ("\\VAR{ 9 ** 99999 }", "too large"),
    ("\\VAR{ (9 ** 60) ** 60 ** 60 }", "too large"),
    ("\\VAR{ no_such_name }", "no_such_name"),
    ("\\VAR{ t('unknown') }", "no such label"),
    ("\\VAR{ t('and_more') }", "count"),
    ("\\VAR{ 1 / (network.counts.inputs - 2) }", "ZeroDivisionError"),
    ("\\BLOCK{ include '/etc/passwd' }", "only the shipped templates"),
    ("\\BLOCK{ macro m() }\\VAR{ m() }\\BLOCK{ endmacro }\\VAR{ m() }", "recurses"),
    ("\\BLOCK{ for x in }", "syntax error"),
])
def test_a_bad_user_template_is_exit_2_with_its_line(tmp_path, monkeypatch, capsys, body, what):
    monkeypatch.chdir(tmp_path)
    template = tmp_path / "mine.tex"
    template.write_text(HEAD + "Line three.\n" + body + "\n\\end{document}\n")
    code, _ = run_cli("report", "generic-2-3-2", "--template", str(template), "-o", str(tmp_path / "r.tex"))
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("derive: error: "), err
    assert f"{template}, line 4:" in err and what in err, err
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "r.tex").exists()


def test_the_sandbox_keeps_what_templates_need(tmp_path):
    """Macros, loops, filters, labels and the shipped preamble all work in a user's template."""
    template = tmp_path / "mine.tex"
    template.write_text(
        "\\BLOCK{import 'macros.tex' as m}\\BLOCK{include 'preamble.tex'}\n\\begin{document}\n"
        "\\VAR{t('proofs')}: \\BLOCK{for f in proofs.families}\\VAR{f.family} \\VAR{f.proven|num}/\\VAR{f.total}; "
        "\\BLOCK{endfor}\n\\VAR{m.drawing(network.drawing)}\n\\end{document}\n"
    )
    code, _ = run_cli("report", "generic-2-3-2", "--template", str(template), "-o", str(tmp_path / "r.pdf"))
    assert code == 0
    text = subprocess.run(["pdftotext", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True).stdout
    shown = " ".join(text.split())
    assert "Proofs: backward recurrence 3/3;" in shown and "BP4 12/12;" in shown and "a31" in shown  # the drawing


# ---------------------------------------------------------------------------
# 2. No output is one of the inputs; 3. outputs atomic, with the umask's mode
# ---------------------------------------------------------------------------


def test_an_output_over_an_input_is_refused_before_any_work(tmp_path, capsys):
    template = tmp_path / "my.tex"
    template.write_text(HEAD + "\\VAR{title}\n\\end{document}\n")
    before = template.read_bytes()
    homework = [ROOT / "examples" / "two-two-two-homework.toml", ROOT / "examples" / "zhou-homework.toml"]
    graded = tmp_path / "graded"
    graded.mkdir()
    (graded / "class-summary.tex").write_bytes(before)
    (graded / "zhou-homework.tex").write_bytes(before)
    cases = [
        ["generic-2-3-2", "--template", str(template), "-o", str(tmp_path / "my.pdf")],  # the .tex beside it
        ["generic-2-3-2", "--template", str(template), "-o", str(template)],
        [str(homework[0]), "--template", str(template), "-o", str(tmp_path / "my.pdf")],
        [*map(str, homework), "--template", str(graded / "class-summary.tex"), "-o", str(graded)],
        [*map(str, homework), "--template", str(graded / "zhou-homework.tex"), "-o", str(graded)],
    ]
    for args in cases:
        started = time.monotonic()
        code, _ = run_cli("report", *args)
        assert code == 2 and time.monotonic() - started < 2.0, args  # before proving or checking anything
        err = capsys.readouterr().err
        assert "is also an input" in err and "refusing to write over it" in err, err
    assert template.read_bytes() == before
    assert (graded / "class-summary.tex").read_bytes() == before
    assert sorted(p.name for p in graded.iterdir()) == ["class-summary.tex", "zhou-homework.tex"]
    assert not (tmp_path / "my.pdf").exists()


def test_reports_are_written_with_the_umask_mode(tmp_path):
    previous = os.umask(0o022)
    try:
        assert run_cli("report", "generic-2-3-2", "-o", str(tmp_path / "r.pdf"))[0] == 0
        os.umask(0o027)
        assert run_cli("report", "generic-2-3-2", "-o", str(tmp_path / "s.tex"))[0] == 0
    finally:
        os.umask(previous)
    assert (tmp_path / "r.pdf").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "r.tex").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "s.tex").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.pdf", "r.tex", "s.tex"]  # no temporary left


# ---------------------------------------------------------------------------
# 4. TeX in its own process group: killed whole on the timeout and on SIGTERM
# ---------------------------------------------------------------------------


def test_a_tex_loop_is_killed_at_the_timeout_with_its_directory(tmp_path):
    template = tmp_path / "loop.tex"
    template.write_text(LOOP)
    old = tmp_path / "r.pdf"
    old.write_bytes(b"%PDF-1.5 an older report of another network")
    started = time.monotonic()
    process = derive_process("report", "generic-2-3-2", "--template", str(template), "-o", str(old), "--json",
                             tmp=tmp_path, DERIVE_TEX_TIMEOUT="3")
    out, err = process.communicate(timeout=120)
    elapsed = time.monotonic() - started
    assert process.returncode == 1, err
    assert "did not finish within 3 s" in err and elapsed < 30, (elapsed, err)
    assert wait_until(lambda: not tex_processes_in(tmp_path), 5), "a TeX process survived"
    assert not list(tmp_path.glob("derive-report-*"))
    # 5. the older PDF does not stay beside the new .tex looking current
    report = json.loads(out)["reports"][0]
    assert not old.exists() and report["removed"] == str(old) and report["pdf"] is None
    assert "was removed" in report["message"] and "was removed" in err
    assert (tmp_path / "r.tex").exists()


def test_a_bad_timeout_setting_is_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DERIVE_TEX_TIMEOUT", "soon")  # read when the report runs: no process of its own needed
    monkeypatch.chdir(tmp_path)
    code, _ = run_cli("report", "generic-2-3-2", "-o", str(tmp_path / "r.pdf"))
    err = capsys.readouterr().err
    assert code == 2 and "DERIVE_TEX_TIMEOUT" in err and len(err.strip().splitlines()) == 1


def test_sigterm_while_tex_runs_kills_its_group_and_removes_its_directory(tmp_path):
    template = tmp_path / "loop.tex"
    template.write_text(LOOP)
    process = derive_process("report", "generic-2-3-2", "--template", str(template), "-o", str(tmp_path / "r.pdf"),
                             tmp=tmp_path, DERIVE_TEX_TIMEOUT="300")
    try:
        def engine_group() -> int | None:
            table = processes()
            for pid, (name, ppid, pgid) in table.items():
                if ppid == process.pid and pgid == pid:  # latexmk, leader of its own group
                    if any(n == "pdflatex" and g == pgid for n, _, g in table.values()):
                        return pgid
            return None

        assert wait_until(lambda: engine_group() is not None, 60), "pdflatex never started"
        group = engine_group()
        assert group != os.getpgid(process.pid)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("derive: terminated while TeX compiled"), err
    assert wait_until(lambda: not any(g == group for _, _, g in processes().values()), 5), "TeX survived"
    assert not tex_processes_in(tmp_path)
    assert not list(tmp_path.glob("derive-report-*"))


# ---------------------------------------------------------------------------
# 6. What is kept as math compiles; the rest is shown as text
# ---------------------------------------------------------------------------


def preamble() -> str:
    return environment().get_template("preamble.tex").render(engine="pdflatex", lang="en")


def compiles(lines: list[str]) -> str | None:
    """None when a document of these lines compiles; else the first line that breaks it (bisected)."""
    def ok(chunk):
        body = "\n".join(f"\\noindent {line}\\par" for line in chunk)
        return compile_pdf(preamble() + "\\begin{document}\n" + body + "\n\\end{document}\n", "pdflatex").ok

    if ok(lines):
        return None
    while len(lines) > 1:
        half = lines[: len(lines) // 2]
        lines = lines[len(lines) // 2 :] if ok(half) else half
    return lines[0]


def uses(name_tex: str) -> list[str]:
    """A name as the report prints it: alone, as a power's base, in a product and a function, a ∂."""
    q, r = sp.symbols("q r")
    shown = math_or_text(name_tex)
    expr = sp.latex(q**2 * r + sp.Function("sigma")(q) / q + sp.sqrt(q), symbol_names={q: shown, r: "r"})
    cube = sp.latex(q**3, symbol_names={q: shown})  # SymPy brackets a name holding ^; else <name>^{3}
    return [f"${shown}$", f"${expr}$", f"$\\frac{{\\partial C}}{{\\partial {shown}}} = {cube}$",
            f"\\tikz\\node[draw]{{${shown}$}};"]


@pytest.mark.parametrize("tex", ["a_b_c", r"\big", "x^", r"\left( \right", r"\left( x", r"x \right)", "x'_1",
                                 r"\middle|", r"{\left( }\right)", "x^2^3", r"\hat", r"\frac{a}", r"\sqrt[{x}",
                                 r"\text{a^b}", r"\mathscr{w}", r"x^\frac12", r"\big x"])
def test_latex_that_would_break_the_pdf_is_shown_as_text(tex):
    assert not is_safe_math(tex, name=True)  # x'_1 is math, but no name: it takes no ^{2}
    assert math_or_text(tex).startswith(r"\text{\ttfamily ")


def test_odd_names_in_a_spec_compile(tmp_path):
    spec = tmp_path / "odd.toml"
    spec.write_text(
        '[network]\nname = "odd"\ninputs = ["x"]\ntargets = ["y"]\ncost = "C"\n'
        '[equations]\nz = "wscr*x + b_c + Ascr"\na = "sigmoid(z)"\nC = "(a - y)**2/2"\n'
        '[values]\nx = 1\ny = 0\nwscr = 0.5\nb_c = 0.25\nAscr = 1\n'
        "[latex]\nz = 'a_b_c'\na = '\\big'\nb_c = 'x^'\ny = '\\left( \\right'\nx = \"x'_1\"\n"
    )
    code, _ = run_cli("report", str(spec), "--explain", "wscr", "-o", str(tmp_path / "odd.pdf"))
    assert code == 0 and (tmp_path / "odd.pdf").stat().st_size > 0
    text = subprocess.run(["pdftotext", str(tmp_path / "odd.pdf"), "-"], capture_output=True, text=True).stdout
    assert "a_b_c" in text and "\\left( \\right" in text


TOKENS = [
    "x", "y", "2", "+", "-", "=", "(", ")", "[", "]", "|", ",", " ", "_", "^", "{", "}", "'", "''", "'_1",
    "\\alpha", "\\Sigma", "\\partial", "\\prime", "\\cdots", "\\neq", "\\sum", "\\exp", "\\,", "\\quad",
    "\\{", "\\}", "\\|", "\\_", "\\hat", "\\bar", "\\mathbf", "\\mathbb", "\\boldsymbol", "\\overline",
    "\\frac", "\\sqrt", "[3]", "\\text{ab c}", "\\operatorname{arg max}", "\\text", "\\left(", "\\left.",
    "\\left\\langle", "\\right)", "\\right.", "\\right|", "\\middle|", "\\big(", "\\Bigl[", "\\big",
    "\\lvert", "\\input", "\\def", "\\mathscr", "\\\\", "&", "\\left", "\\right",
]
MODIFIERS = ["hat", "bar", "dot", "ddot", "dddot", "ddddot", "tilde", "vec", "prime", "prm", "bm", "bold",
             "cal", "scr", "frak", "norm", "avg", "abs", "mag", "check", "breve", "acute", "grave", "mathring"]
STEMS = ["w", "x", "A", "alpha", "Lambda", "hbar", "ell", "aleph", "beth", "gimel", "eth", "mho", "wp", "digamma",
         "lamda", "varkappa", "theta", "omicron", "net", "o"]


@settings(derandomize=True, max_examples=1500, deadline=None, database=None)
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=10).map("".join))
def collect_names(tex):
    if is_safe_math(tex, name=True):
        NAMES.add(tex)
    elif is_safe_math(tex):
        FORMULAS.add(tex)  # math, but not a name: x'_1 takes no ^{2}
    else:
        REJECTED.add(tex)


@settings(derandomize=True, max_examples=300, deadline=None, database=None)
@given(st.tuples(st.sampled_from(STEMS), st.lists(st.sampled_from(MODIFIERS), max_size=2),
                 st.sampled_from(["", "1", "_1", "_ij", "__2", "_a_b", "2_3"])))
def collect_identifiers(parts):
    stem, modifiers, tail = parts
    IDENTIFIERS.add(stem + "".join(modifiers) + tail)


NAMES: set[str] = set()
FORMULAS: set[str] = set()
REJECTED: set[str] = set()
IDENTIFIERS: set[str] = set()


def test_every_generated_name_kept_as_math_compiles_in_one_document():
    """Hundreds of generated [latex] names (and SymPy's own names of identifiers) in one TeX run."""
    collect_names()
    collect_identifiers()
    names, formulas, rejected = sorted(NAMES), sorted(FORMULAS), sorted(REJECTED)
    assert len(names) >= 200 and len(rejected) >= 200 and formulas, (len(names), len(formulas), len(rejected))
    assert all(math_or_text(t).startswith(r"\text{\ttfamily ") for t in rejected + formulas)
    assert all(math_or_text(t, name=False) == t for t in formulas)
    lines = [line for tex in names for line in uses(tex)]
    lines += [f"${tex}$" for tex in formulas]
    lines += [f"${math_or_text(tex)}$" for tex in rejected]  # shown as text: compiles too
    q = sp.Symbol("q")
    lines += [f"${sp.latex(q**2 + sp.Symbol(n) * q, symbol_names={q: symbol_latex(n)})}$"
              for n in sorted(IDENTIFIERS)]  # free-form names without [latex]: SymPy's spelling (wscr, wprime_1)
    started = time.monotonic()
    broken = compiles(lines)
    assert broken is None, broken
    print(f"{len(names)} names, {len(formulas)} formulas, {len(rejected)} rejected, {len(IDENTIFIERS)} "
          f"identifiers: {len(lines)} lines compiled in {time.monotonic() - started:.1f} s")
