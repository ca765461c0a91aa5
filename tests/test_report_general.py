"""`derive report SPEC --general`: the proofs for every size in the report, step by step.

The section "Proofs for every size" holds what `derive prove SPEC --general` prints: each covered
formula, its assumptions, its left side step by step with each step's reason, its right side and
the conclusion, the induction that gives δ at every layer, and the formulas no general model covers.
One real PDF is compiled (TeX is installed by the test set-up); the rest renders the .tex only.
"""

import json
import re
from functools import cache
from pathlib import Path

import sympy as sp

from derive import load
from derive.derivation import Derivations
from derive.proof.formulas import load_set
from derive.proof.general.prove import GeneralResult, Step
from derive.proof.general.report import GeneralEntry
from derive.report import network_context, render
from derive.report.render import prove_every_size
from derive.proof.sets import applicable_sets
from derive.report.format import breakable
from derive.texsafe import escape
from tests.test_report import pdf_text, run_cli, squeeze

HOSTILE_SET = "evil\\input{/etc/passwd}"
HOSTILE_ID = "BP3\\write18{touch PWNED}$^^5c&%#~"
HOSTILE_TITLE = "title \\catcode`\\@=11 {\\def\\x{y}}"
HOSTILE_REASON = "reason \\input{/etc/passwd} \\immediate\\write18{rm -rf x} $$ ^^5c"


@cache
def generic():
    """generic-2-3-2, its derivations and its proofs for every size (computed once: about 0.3 s)."""
    network = load("generic-2-3-2")
    return network, Derivations(network), prove_every_size(network, applicable_sets(network))


def context(lang="en", general=None):
    network, derivations, report = generic()
    return network_context(network, derivations, lang=lang, general=report if general is None else general)


def test_the_context_holds_every_covered_formula_step_by_step():
    section = context()["general"]
    assert [s["id"] for s in section["sets"]] == ["book-fc", "nielsen"]
    assert section["summary"] == {"proven": 7, "unproven": 0, "not-covered": 0} and section["all_proven"]
    assert section["not_covered"] == []
    nielsen = next(s for s in section["sets"] if s["id"] == "nielsen")
    bp2 = next(f for f in nielsen["formulas"] if f["formula"] == "BP2")
    assert bp2["proven"] and bp2["status"] == "proven"
    assert [s["reason"] for s in bp2["lhs"]][0] == "as written"
    assert len(bp2["lhs"]) == 3 and all(s["reason"].startswith("chain rule: C depends on") for s in bp2["lhs"][1:])
    assert bp2["lhs"][0]["lines"] == [r"\delta^{l}_{j}"]
    assert r"\sum_{i_{1}=1}^{n_{l + 1}}" in bp2["lhs"][-1]["lines"][0]
    assert len(bp2["rhs"]) == 1 and r"\sum_{k=1}^{n_{l + 1}}" in bp2["rhs"][0]["lines"][0]
    # what every proof of the set assumes is said once; BP1 assumes an elementwise output besides
    assert nielsen["assumptions"][0].startswith("a layered network of any depth L ≥ 2")
    bp1 = next(f for f in nielsen["formulas"] if f["formula"] == "BP1")
    assert bp1["own_assumptions"] == ["the output is elementwise: a[L, j] = σ(z[L, j])"]
    assert bp2["own_assumptions"] == []
    assert [(i["base"], i["step"]) for i in nielsen["inductions"]] == [("BP1", "BP2")]
    # the record is `derive prove --general --json`'s object
    assert section["record"]["summary"] == section["summary"] and section["record"]["general"] is True


def test_without_general_there_is_no_section():
    network, derivations, _ = generic()
    plain = network_context(network, derivations)
    assert plain["general"] is None
    assert "Proofs for every size" not in render("network", plain)


def test_the_tex_writes_each_step_with_its_reason_and_the_induction():
    tex = render("network", context())
    section = tex[tex.index(r"\section{Proofs for every size}"):]
    assert r"\subsection{\texttt{nielsen}}" in section
    assert r"\subsubsection*{\proven \texttt{BP2}: error in terms of the error in the next layer}" in section
    # the left side of BP2 as aligned equations: as written, then each step with its reason beneath
    lhs = re.search(r"\\texttt\{BP2\}.*?\\begin\{align\*\}\n(.*?)\\end\{align\*\}", section, re.S).group(1)
    assert lhs.startswith(r"\delta^{l}_{j}" + "\n" + r"  &= \frac{\partial C}{\partial a^{l}_{j}}")
    assert lhs.count(r"\stepreason{chain rule: C depends on") == 2
    assert r"&= \sigma'\left(z^{l}_{j}\right) \sum_{i_{1}=1}^{n_{l + 1}}" in lhs
    assert "Both sides reach the same canonical form" in section and r"$\square$" in section
    assert r"By induction on $L - l$: \texttt{BP1} gives $\delta^L$" in section
    assert "7 proven for every size, 0 not proven in general, 0 not covered by a general model" in section


def test_the_chinese_report_has_its_own_labels_and_reasons():
    tex = render("network", context("zh"))
    assert "对任意规模的证明" in tex and "左边，逐步推导" in tex and "对 $L - l$ 归纳" in tex
    assert r"\stepreason{链式法则：C 只经由" in tex


def test_long_steps_are_split_into_lines_that_fit():
    """Zhou's hidden-unit terms expand to a dozen sums: split across lines, each within the page."""
    from derive.report.format import LINE_WIDTH, visible_length

    network = load("zhou-2-2-2")
    report = prove_every_size(network, applicable_sets(network))
    section = network_context(network, Derivations(network), general=report)["general"]
    e = next(f for s in section["sets"] for f in s["formulas"] if f["formula"] == "e")
    longest = max(e["lhs"], key=lambda s: len(s["lines"]))
    assert len(longest["lines"]) >= 3
    assert all(visible_length(line) <= LINE_WIDTH + 12 for line in longest["lines"])


def test_a_real_pdf_with_the_general_proofs(tmp_path):
    output = tmp_path / "general.pdf"
    code, stdout = run_cli("report", "generic-2-3-2", "--general", "-o", str(output), "--json")
    assert code == 0, stdout
    data = json.loads(stdout)
    assert data["reports"][0]["compiled"] and data["passed"]
    assert data["general"]["summary"] == {"proven": 7, "unproven": 0, "not-covered": 0}
    assert [i["base"] for i in data["general"]["inductions"]] == ["BP1"]
    text = pdf_text(output)
    assert "Proofs for every size" in text
    assert "Left side, step by step" in text and "Right side" in text
    assert "chain rule: C depends on z[l, j] only through a[l, ·]" in text
    assert "By induction on L − l: BP1 gives" in text
    assert "7 proven for every size, 0 not proven in general" in text
    log = output.with_suffix(".tex").read_text()
    assert r"\section{Proofs for every size}" in log


def test_general_is_for_a_networks_report(tmp_path, capsys):
    homework = Path(__file__).resolve().parent.parent / "examples" / "two-two-two-homework.toml"
    code, _ = run_cli("report", str(homework), "--general", "-o", str(tmp_path / "h.pdf"))
    assert code == 2
    assert "--general is for a network's report" in capsys.readouterr().err


def hostile_set(directory: Path) -> Path:
    def lit(text: str) -> str:
        return "'''" + text + "'''"

    path = directory / "evil-set.toml"
    path.write_text(
        f"id = {lit(HOSTILE_SET)}\ntitle = {lit(HOSTILE_TITLE)}\nsource = 'nowhere'\n\n"
        f"[[formula]]\nid = {lit(HOSTILE_ID)}\ntitle = {lit(HOSTILE_TITLE)}\n"
        "latex = '\\input{/etc/passwd}'\n"
        "when = { kind = \"layered\" }\nfor = { l = \"2..L\", j = \"1..size[l]\" }\n"
        "lhs = \"D(C, b[l, j])\"\nrhs = \"delta[l, j]\"\n"
    )
    return path


def test_hostile_formula_set_ids_titles_and_reasons_are_escaped(tmp_path):
    network, derivations, _ = generic()
    evil = load_set(hostile_set(tmp_path))
    report = prove_every_size(network, [evil])
    assert report.count("proven") == 1  # BP3 under a hostile name: still proven
    formula = evil.formulas[0]
    step = Step(HOSTILE_REASON, sp.Symbol("x"))
    report.entries += [
        GeneralEntry(HOSTILE_SET, formula, GeneralResult("not-covered", HOSTILE_REASON)),
        GeneralEntry(HOSTILE_SET, formula, GeneralResult("unproven", HOSTILE_REASON, [HOSTILE_REASON],
                                                         [Step("as written", sp.Symbol("x")), step],
                                                         [Step("as written", sp.Symbol("y"))], sp.Symbol("x") - 1)),
    ]
    tex = render("network", network_context(network, derivations, general=report))
    section = tex[tex.index(r"\section{Proofs for every size}"):]
    for raw in (r"\input{/etc/passwd}", r"\write18", r"\catcode", r"\def\x", "^^5c", r"\immediate"):
        assert raw not in section, raw
    for text in (HOSTILE_SET, HOSTILE_ID, HOSTILE_TITLE, HOSTILE_REASON):
        assert escape(text) in section, text
    assert r"\stepreason{" + escape(HOSTILE_REASON) + "}" in section
    assert r"\texttt{" + breakable(r"\input{/etc/passwd}") + "}" in section  # the set's latex, as typed


def test_a_hostile_formula_set_compiles_and_prints_literally(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = hostile_set(tmp_path)
    output = tmp_path / "evil.pdf"
    code, stdout = run_cli("report", "generic-2-3-2", "--general", "--formulas", str(path), "-o", str(output))
    assert code == 0, stdout
    shown = squeeze(pdf_text(output))
    for text in (HOSTILE_SET, HOSTILE_ID, HOSTILE_TITLE):
        assert squeeze(text) in shown, text
    assert not list(tmp_path.rglob("PWNED"))
    assert Path("/etc/passwd").read_text().splitlines()[0] not in shown
