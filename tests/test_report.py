"""Reports: real PDFs compiled by latexmk, read back with pdftotext.

Nothing here skips: `make test` installs TeX (Debian's packages) before the
suite runs, and a missing engine is a failure, not a skip.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from derive import load, prove
from derive.cli import main
from derive.report import claims_context, network_report_context, render
from derive.report.tex import DEBIAN_PACKAGES
from derive.texsafe import escape, is_safe_math, math_or_text

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def pdf_text(path: Path) -> str:
    """The PDF's text with whitespace collapsed (pdftotext breaks lines where TeX did)."""
    out = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, check=True).stdout
    return re.sub(r"\s+", " ", out)


def pdf_pages(path: Path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"Pages:\s+(\d+)", info).group(1))


def run_cli(*args: str) -> tuple[int, str]:
    """Run `derive` in this process; (exit code, stdout)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


def test_tex_tools_are_installed_by_the_setup():
    """The test command's set-up installs TeX; a missing tool fails here, by name."""
    missing = [tool for tool in ("latexmk", "pdflatex", "xelatex", "pdftotext", "pdfinfo") if shutil.which(tool) is None]
    assert not missing, f"not installed: {missing}; `make setup` installs {DEBIAN_PACKAGES}"


def test_makefile_installs_the_packages_the_error_message_names():
    makefile = (ROOT / "Makefile").read_text()
    block = re.search(r"TEX_PACKAGES := (.*?)\n\n", makefile, re.S).group(1)
    assert set(block.replace("\\", " ").split()) == set(DEBIAN_PACKAGES.split())


# ---------------------------------------------------------------------------
# The textbook reports, in English and Chinese
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_two_two_two_report_explains_w1_path_by_path(tmp_path, lang):
    output = tmp_path / "two.pdf"
    code, stdout = run_cli("report", "two-two-two", "--explain", "w1", "--lang", lang, "-o", str(output))
    assert code == 0, stdout
    assert output.exists() and output.with_suffix(".tex").exists()
    text = pdf_text(output)
    heading = {"en": ["The network", "The derivation", "Step by step", "Proofs", "Numbers at the spec"],
               "zh": ["网络", "推导", "逐步推导", "证明", "数值"]}[lang]
    for h in heading:
        assert h in text, h
    # Mazur's numbers: both paths of ∂E/∂w1 and their sum
    assert "0.0006683960211" in text and "-0.0002298282867" in text.replace("−", "-")
    assert "0.0004385677345" in text
    assert ("Path 2" if lang == "en" else "路径 2") in text
    assert ("Path 3" if lang == "en" else "路径 3") not in text  # w1 reaches E by exactly two paths
    # the proof table: every family of the mazur set, all proven
    for family in ("output errors", "output weights", "hidden weights", "shared biases"):
        assert family in text
    assert re.search(r"12 proven, 0 refuted, 0 undecided|12 个已证明，0 个已反驳，0 个未判定", text)
    # numbers at [values] with the finite-difference column: the loss Mazur prints
    assert "0.2983711088" in text
    assert pdf_pages(output) >= 3


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_book_12_3_2_report_proves_bp1_to_bp4_in_its_table(tmp_path, lang):
    output = tmp_path / "book.pdf"
    code, _ = run_cli("report", "book-12-3-2", "--lang", lang, "-o", str(output))
    assert code == 0
    text = pdf_text(output)
    proofs = prove(load("book-12-3-2"))
    for row in proofs.families():  # the table holds what `derive prove` finds, row for row
        assert f"{row['set']} {row['family']} {row['proven']}/{row['total']} 0 0" in text, row
    assert {"nielsen", "book-fc"} <= {row["set"] for row in proofs.families()}
    assert "BP4 42/42" in text  # one instance per weight
    total = proofs.summary()["total"]
    assert f"{total} proven, 0 refuted, 0 undecided" in text or f"{total} 个已证明" in text
    assert "more not listed" not in text  # 47 parameters: every gradient is listed


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_book_cnn_report_states_the_tie_condition(tmp_path, lang):
    output = tmp_path / "cnn.pdf"
    code, _ = run_cli("report", "book-cnn", "--explain", "wF_1_1_1", "--lang", lang, "-o", str(output))
    assert code == 0
    text = pdf_text(output)
    # w^F_{1,11} feeds all 16 positions of map 1, each through one pooling unit to the 3 outputs:
    # 48 paths, too many to write out, so the explanation goes node by node
    assert ("The graph has 48 paths" if lang == "en" else "共有 48 条路径") in text
    total = prove(load("book-cnn")).summary()["total"]
    assert f"{total} proven, 0 refuted, 0 undecided" in text or f"{total} 个已证明" in text
    assert "no pooling window has a tie" in text  # the assumption, as the prover states it
    assert "3×4×4" in text.replace(" ", "") or "3 × 4 × 4" in text  # the drawing's feature maps


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_graded_homework_report(tmp_path, lang):
    output = tmp_path / "graded.pdf"
    code, _ = run_cli("report", str(EXAMPLES / "two-two-two-homework.toml"), "--lang", lang, "-o", str(output))
    assert code == 0  # every claim gets the verdict its answer key expects
    text = pdf_text(output)
    assert "5/14 claims proven" in text
    for diagnosis in ("sign", "constant-factor", "missing-sigma-prime", "wrong-weight", "missing-path",
                      "shared-parameter"):
        assert diagnosis in text
    assert "dE/db2 (shared bias counted once)" in text
    # a refutation carries its counterexample and the correct formula
    assert ("Counterexample" if lang == "en" else "反例") in text
    assert ("correct" if lang == "en" else "正确公式") in text


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_training_report_draws_the_curves(tmp_path, lang):
    output = tmp_path / "train.pdf"
    code, stdout = run_cli("train", "book-12-3-2", "--data", "book-0-1", "--epochs", "40", "--report", str(output),
                           "--lang", lang)
    assert code == 0, stdout
    text = pdf_text(output)
    assert ("Loss and accuracy by epoch" if lang == "en" else "各轮的损失与准确率") in text
    tex = output.with_suffix(".tex").read_text()
    plots = re.findall(r"\\addplot\[[^\]]*\] coordinates \{([^}]*)\}", tex)
    assert len(plots) == 3  # loss, training and test accuracy
    assert all(len(re.findall(r"\(\d+,", plot)) == 40 for plot in plots)  # one point per epoch
    final = float(re.findall(r"\(40,([\d.]+)\)", plots[1])[0])
    assert f"{final:.2f} %" in text.replace("\u2009", " ")  # the curve ends at the reported accuracy


def test_digits_training_report_has_a_test_curve(tmp_path):
    output = tmp_path / "digits.tex"
    code, _ = run_cli("train", "digits-64-30-10", "--data", "digits", "--epochs", "3", "--report", str(output))
    assert code == 0
    tex = output.read_text()
    assert len(re.findall(r"\\addplot", tex)) == 3


def test_class_grading_writes_one_report_per_file_and_a_summary(tmp_path):
    files = [str(EXAMPLES / "two-two-two-homework.toml"), str(EXAMPLES / "zhou-homework.toml")]
    code, stdout = run_cli("report", *files, "-o", str(tmp_path / "graded"), "--json")
    assert code == 0
    written = json.loads(stdout)["reports"]
    assert [Path(r["pdf"]).name for r in written] == ["two-two-two-homework.pdf", "zhou-homework.pdf",
                                                       "class-summary.pdf"]
    summary = pdf_text(tmp_path / "graded" / "class-summary.pdf")
    assert "two-two-two-homework.toml" in summary and "zhou-homework.toml" in summary
    assert re.search(r"\d+/\d+ claims proven in 2 files", summary)


# ---------------------------------------------------------------------------
# Untrusted text: shown literally, never executed
# ---------------------------------------------------------------------------

HOSTILE = [
    r"\input{/etc/passwd}",
    r"\write18{touch PWNED}",
    r"\immediate\write18{touch PWNED}",
    r"\catcode`\%=12",
    r"\def\x{y}",
    "100% # ~ ^ _ & $",
    "unbalanced { { }}}",
    "^^5cinput{/etc/passwd}",
    "学生 张三",
]


def hostile_files(directory: Path) -> tuple[Path, Path]:
    def lit(text: str) -> str:
        return "'" + text + "'"  # TOML literal strings: no escapes to worry about

    spec = directory / "evil-net.toml"
    spec.write_text(
        "[network]\n"
        f"name = {lit(HOSTILE[0])}\n"
        f"description = {lit(' | '.join(HOSTILE[1:]))}\n"
        'inputs = ["x"]\ntargets = ["y"]\ncost = "C"\n\n'
        '[equations]\nz = "w*x + b"\na = "sigmoid(z)"\nC = "(a - y)**2/2"\n\n'
        f"[latex]\nw = {lit(HOSTILE[0])}\nz = {lit(HOSTILE[7])}\nb = '\\beta_{{0}}'\n\n"
        "[values]\nx = 0.5\ny = 1\nw = 0.25\nb = -0.1\n"
    )
    claims = directory / "evil-claims.toml"
    claims.write_text(
        'network = "evil-net.toml"\n'
        f"title = {lit(HOSTILE[2])}\n"
        f"student = {lit(HOSTILE[8] + ' ' + HOSTILE[5])}\n\n"
        f"[[claim]]\nname = {lit(HOSTILE[3])}\nwrt = \"w\"\nformula = \"(a - y)*a*(1 - a)*x\"\n\n"
        f"[[claim]]\nname = {lit(HOSTILE[4] + ' ' + HOSTILE[6])}\nwrt = \"w\"\nformula = \"(y - a)*a*(1 - a)*x\"\n"
    )
    return spec, claims


def squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_hostile_text_compiles_and_shows_literally(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec, claims = hostile_files(tmp_path)
    code, _ = run_cli("report", str(spec), "--explain", "w", "-o", str(tmp_path / "net.pdf"))
    assert code == 0
    code, _ = run_cli("report", str(claims), "-o", str(tmp_path / "claims.pdf"))
    assert code == 1  # the second claim is refuted: the report is written all the same
    shown = squeeze(pdf_text(tmp_path / "net.pdf")) + squeeze(pdf_text(tmp_path / "claims.pdf"))
    for text in HOSTILE:
        assert squeeze(text) in shown, text
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()
    passwd = Path("/etc/passwd").read_text().splitlines()[0]
    assert passwd not in shown  # nothing was \input


def test_every_printable_character_prints_as_itself(tmp_path):
    """All of ASCII, escaped, compiled by pdfLaTeX and read back: the same text."""
    from derive.report.tex import compile_pdf

    ascii_text = "".join(chr(c) for c in range(33, 127))
    chunks = [ascii_text[i : i + 24] for i in range(0, len(ascii_text), 24)]  # short lines: nothing overflows
    body = "".join(f"\\noindent\\texttt{{{escape(c)}}}\n\n" for c in chunks)
    body += "".join(f"\\noindent {escape(c)}\n\n" for c in chunks)
    tex = "\\documentclass{article}\\usepackage[T1]{fontenc}\\usepackage{lmodern}\\begin{document}\n" \
          f"{body}\\end{{document}}\n"
    compiled = compile_pdf(tex, "pdflatex")
    assert compiled.ok, compiled.log_excerpt
    (tmp_path / "ascii.pdf").write_bytes(compiled.pdf)
    lines = [squeeze(line) for line in
             subprocess.run(["pdftotext", str(tmp_path / "ascii.pdf"), "-"], capture_output=True, text=True).stdout.splitlines()]
    shown = "".join(lines)
    assert shown.count(ascii_text) == 2, shown


@pytest.mark.parametrize("tex, safe", [
    (r"\beta_{0}", True),
    (r"net_{h1}", True),
    (r"\hat{y}_{1}", True),
    (r"\frac{\partial E}{\partial w_5}", True),
    (r"\input{/etc/passwd}", False),
    (r"\text{\input{x}}", False),
    (r"^^5cinput", False),
    (r"a}{b", False),
    (r"x % comment", False),
    (r"\def\x{y}", False),
    (r"\csname input\endcsname", False),
])
def test_user_math_is_kept_only_when_every_command_is_plain_math(tex, safe):
    assert is_safe_math(tex) is safe
    if not safe:
        assert math_or_text(tex).startswith(r"\text{\ttfamily ")


# ---------------------------------------------------------------------------
# Failures say what happened; the .tex is kept
# ---------------------------------------------------------------------------


def test_without_tex_the_command_names_the_debian_packages(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no latexmk, no pdflatex on the path
    monkeypatch.chdir(tmp_path)
    code, _ = run_cli("report", "two-two-two", "-o", str(tmp_path / "r.pdf"))  # in this process: no spawn
    assert code == 1
    err = capsys.readouterr().err
    assert "apt-get install" in err and "texlive-latex-base" in err
    assert (tmp_path / "r.tex").exists() and not (tmp_path / "r.pdf").exists()


def test_a_tex_error_shows_the_log_lines_and_keeps_the_tex(tmp_path, capsys):
    template = tmp_path / "broken.tex"
    template.write_text("\\documentclass{article}\\begin{document}\\VAR{title} \\undefinedcommand\\end{document}\n")
    code, _ = run_cli("report", "generic-2-3-2", "--template", str(template), "-o", str(tmp_path / "r.pdf"))
    assert code == 1
    err = capsys.readouterr().err
    assert "Undefined control sequence" in err and "undefinedcommand" in err
    assert len(err.splitlines()) < 40  # the relevant lines, not the whole log
    assert (tmp_path / "r.tex").exists() and not (tmp_path / "r.pdf").exists()
    assert not list(tmp_path.glob("*.partial"))


def test_a_users_template_gets_the_documented_context(tmp_path):
    template = tmp_path / "mine.tex"
    template.write_text(
        "\\documentclass{article}\\begin{document}\n"
        "My report on \\VAR{network.name}: \\VAR{network.counts.parameters} parameters.\n"
        "\\BLOCK{for f in proofs.families}\\VAR{f.family}: \\VAR{f.proven}/\\VAR{f.total}. \\BLOCK{endfor}\n"
        "$\\VAR{derivation.gradients[0].lhs} = \\VAR{derivation.gradients[0].chain[0]}$\n"
        "\\end{document}\n"
    )
    output = tmp_path / "out.pdf"
    code, _ = run_cli("report", "generic-2-3-2", "--template", str(template), "-o", str(output))
    assert code == 0
    text = pdf_text(output)
    assert "My report on generic-2-3-2: 17 parameters." in text
    assert "BP4: 12/12." in text


def test_bad_report_input_exits_2(tmp_path, capsys):
    assert run_cli("report", "no-such-network", "-o", str(tmp_path / "r.pdf"))[0] == 2
    assert run_cli("report", "two-two-two", "--explain", "nope", "-o", str(tmp_path / "r.pdf"))[0] == 2
    assert run_cli("report", "two-two-two", "-o", str(tmp_path / "r.docx"))[0] == 2
    assert run_cli("report", "two-two-two", "-o", str(tmp_path / "missing-dir" / "r.pdf"))[0] == 2
    assert run_cli("report", "two-two-two", "book-cnn", "-o", str(tmp_path))[0] == 2
    template = tmp_path / "bad.tex"
    template.write_text("\\BLOCK{for x in}")
    assert run_cli("report", "two-two-two", "--template", str(template), "-o", str(tmp_path / "r.pdf"))[0] == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert all(line.startswith("derive: error:") for line in err.strip().splitlines())


def test_tex_only_needs_no_engine_and_is_deterministic(tmp_path):
    first, second = tmp_path / "a.tex", tmp_path / "b.tex"
    assert run_cli("report", "book-12-3-2", "-o", str(first))[0] == 0
    assert run_cli("report", "book-12-3-2", "-o", str(second))[0] == 0
    # the date line and the proof's time (0.01 or 0.02 s, as the machine's load has it) differ between runs
    strip = lambda p: re.sub(r"Generated by .*| in \d+\.\d+ s\.", "", p.read_text())  # noqa: E731
    assert strip(first) == strip(second)
    assert not (tmp_path / "a.pdf").exists()


def test_context_renders_without_compiling():
    context = network_report_context(load("generic-2-3-2"))
    tex = render("network", context)
    assert tex.startswith("\\documentclass") and "\\end{document}" in tex
    assert context["proofs"]["summary"]["refuted"] == 0


def test_claims_context_has_one_entry_per_claim():
    from derive.claims.check import check
    from derive.claims.claimsfile import load_claims

    result = check(load_claims(EXAMPLES / "zhou-homework.toml"))
    context = claims_context(result)
    assert len(context["claims"]["list"]) == len(result.results)
    assert context["claims"]["grade"] == result.grade


def test_refutations_carry_their_counterexamples(tmp_path):
    planted = ROOT / "tests" / "data" / "planted.toml"
    output = tmp_path / "planted.pdf"
    code, _ = run_cli("report", "generic-3-4-4-2", "--formulas", str(planted), "-o", str(output))
    assert code == 1  # as `derive prove` on the same input
    from derive.proof.formulas import load_set
    from derive.proof import prove as prove_sets

    expected = prove_sets(load("generic-3-4-4-2"), [load_set(planted)])
    refuted = [r for r in expected.results if r.verdict.status == "refuted"]
    text = pdf_text(output)
    assert text.count("Counterexample (certified by exact rational arithmetic)") == min(len(refuted), 40)
    first = refuted[0].verdict.counterexample
    assert first.lhs[:12] in text.replace("−", "-")  # the left side's value, as the prover computed it


def test_every_label_and_diagnosis_has_a_chinese_text():
    from derive.claims.mistakes import DIAGNOSES
    from derive.report.labels import DIAGNOSIS_TITLES_ZH, LABELS

    assert set(LABELS["zh"]) == set(LABELS["en"])
    assert set(DIAGNOSIS_TITLES_ZH) == set(DIAGNOSES)


def test_the_drawing_labels_edges_with_their_weights_and_notes_shared_biases():
    from derive import Derivations
    from derive.report.drawing import draw
    from derive.report.format import MathWriter

    network = load("two-two-two")
    drawing = draw(network, MathWriter(Derivations(network)))
    labels = {e["label"] for e in drawing["edges"] if e["label"]}
    assert {f"w_{{{i}}}" for i in range(1, 9)} <= labels and r"\sigma" in labels
    notes = {u["id"]: u["note"] for u in drawing["units"] if u["note"]}
    assert notes == {"nneth1": "b_{1}", "nneth2": "b_{1}", "nneto1": "b_{2}", "nneto2": "b_{2}"}
    columns = sorted({u["x"] for u in drawing["units"]})
    assert len(columns) == 6  # x, net_h, out_h, net_o, out_o, E: one column per depth
    # a layered network too large to label: columns elided, no labels
    big = draw(load("digits-64-30-10"), MathWriter(Derivations(load("digits-64-30-10"))))
    assert not any(e["label"] for e in big["edges"])
    assert sum(u["style"] == "dots" for u in big["units"]) == 3  # 64 inputs, 30 hidden, 10 outputs elided


def test_the_tex_is_the_same_whatever_the_hash_seed(tmp_path):
    """Sets of symbols iterate in hash order; nothing in a report may depend on it."""
    texts = []
    for seed in ("1", "3"):  # two seeds whose set orders differ on this network
        output = tmp_path / f"z{seed}.tex"
        subprocess.run([sys.executable, "-m", "derive", "report", "zhou-2-2-2", "-o", str(output)],
                       env={**os.environ, "PYTHONHASHSEED": seed}, check=True, capture_output=True)
        texts.append(re.sub(r"Generated by .*|in [\d.]+ s", "", output.read_text()))
    assert texts[0] == texts[1]
