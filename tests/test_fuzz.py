"""Fuzz every input surface of the command line (issue 9).

Each case runs `derive` in a child of a fork-server (tests/fuzzing.py) under an
address-space, CPU-time and file-size limit and a wall-clock deadline, in a
sandbox of its own (inputs in `in/`, the working and output directory `out/`,
TMPDIR and HOME inside the case). Every case must:

- exit with 0, 1 or 2 (not 3, the internal error, nor a signal or the deadline);
- print no traceback and no "internal error" on stderr;
- with --json and exit 0 or 1, print one complete JSON value with finite numbers;
- leave every output complete or absent (no *.partial, no half PDF/.npz/.tex);
- touch no file outside the output paths (inputs, HOME, TMPDIR leftovers, /tmp).

Hypothesis runs with a fixed seed (derandomize) and a fixed number of examples
per surface, without shrinking; each test runs all its examples and then fails
with one reproducer per root cause (exception and file:line). The counts per
surface and exit code go to fuzz-summary.json in pytest's base temporary
directory; `python tests/fuzzing.py --summary` prints them.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

import fuzzing  # noqa: E402
from fuzzing import Case, FuzzServer, Harness, failure_report  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
NETWORKS = REPO / "derive" / "networks"
FORMULAS = REPO / "formulas"
TEMPLATES = REPO / "reports"

BUDGET = "0.25"  # seconds per identity in every proving case: the suite must stay fast
TIMEOUT = 20.0  # wall-clock deadline of a case (a legitimate case here takes a few seconds)


def fuzz_settings(n: int):
    return settings(
        derandomize=True, max_examples=n, deadline=None, database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: every example runs once
        suppress_health_check=list(HealthCheck),
    )


# ---------------------------------------------------------------------------
# The harness, one per module
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def harness(tmp_path_factory, request):
    server = FuzzServer()
    h = Harness(server, tmp_path_factory.mktemp("fuzz"))
    yield h
    server.close()
    summary = h.summary()
    path = tmp_path_factory.getbasetemp() / "fuzz-summary.json"
    path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
    import contextlib

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        fuzzing.print_summary(path)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        sys.stdout.write(f"\n\nfuzz summary ({path}):\n{buffer.getvalue()}")
        sys.stdout.flush()


def run_all(harness: Harness, surface: str, strategy, n: int) -> None:
    """Run n cases drawn from `strategy` (derandomized); fail once at the end with every reproducer."""
    before = len(harness.failures.get(surface, []))

    @fuzz_settings(n)
    @given(case=strategy)
    def body(case):
        harness.run(case)

    body()
    failures = harness.failures.get(surface, [])[before:]
    assert not failures, failure_report(failures)


def run_one(harness: Harness, case: Case) -> None:
    outcome = harness.run(case)
    assert not outcome.problems, failure_report([outcome])


# ---------------------------------------------------------------------------
# Seeds and hostile values
# ---------------------------------------------------------------------------


def _read(path: Path) -> bytes:
    return path.read_bytes()


SPEC_SEEDS = {p.name: _read(p) for p in sorted(NETWORKS.glob("*.toml"))} | {
    "example-two-two-two.toml": _read(EXAMPLES / "two-two-two.toml")}
CLAIMS_SEEDS = {p.name: _read(p) for p in sorted(EXAMPLES.glob("*-homework.toml"))}
FORMULA_SEEDS = {p.name: _read(p) for p in sorted(FORMULAS.glob("*.toml"))} | {
    p.name: _read(p) for p in sorted((REPO / "tests" / "data").glob("planted*.toml"))}
TEMPLATE_SEEDS = {p.name: _read(p) for p in sorted(TEMPLATES.glob("*.tex")) if p.name not in ("preamble.tex",)}
TWO = _read(EXAMPLES / "two-two-two.toml")

# which network a formula set is proven on
FORMULA_NETWORK = {
    "book-cnn.toml": "book-cnn", "cnn.toml": "book-cnn", "planted-cnn.toml": "book-cnn",
    "book-fc.toml": "book-12-3-2", "nielsen.toml": "generic-2-3-2", "planted.toml": "generic-2-3-2",
    "mazur-2-2-2.toml": "two-two-two", "zhou.toml": "zhou-2-2-2",
}

DEEP = "[" * 20000 + "]" * 20000
HOSTILE_VALUES = [
    "9" * 5000, "-" + "9" * 5000, "1e308", "-1e308", "1e309", "5e-324", "nan", "+inf", "-inf",
    "0", "-1", "-7", "1.5", "2147483648", "9223372036854775808", "1_000_000_000", "0x7fffffffffffffff",
    '"nan"', '"inf"', '"1e308"', '"-1"', '""', '" "', '"' + "n" * 20000 + '"', '"σ₁"', '"网络😀"',
    r'"\u202ex\u0007"', '"/dev/zero"', '"/etc/passwd"', '"../../../../../../etc/hostname"',
    r'"\\input{/etc/passwd}"', r'"\\write18{id}"', '"^^5c^^5cinput"', "true", "[]", "{}", "[[]]", DEEP,
    "{a = {b = {c = 1}}}", "[1, 2, 3]", "[100000, 100000]", "[-3, 2, 2]", "[0, 0, 0]", "[1e308, 2]",
    '["x1", "x1"]', "1979-05-27T07:32:00Z", "[2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2]",
    '"sigmoid"', '"softmax"', '"relu"', '"sigma"', '"generic"', '"log_likelihood"', '"l2"',
]
HOSTILE_FORMULAS = [
    "x1**99999999", "x1**64*x2**-64", "exp(exp(exp(exp(exp(exp(x1))))))", "(" * 3000 + "x1" + ")" * 3000,
    "+".join(["x1"] * 6000)[:19999], "x" * 20001, "9" * 5000, "1e308*x1", "1e309", "nan", "inf", "oo", "zoo",
    "I*x1", "pi", "__import__('os').system('id')", "x1.__class__", "lambda: 0", "x1; x2", "[x1]", "x1[0]",
    "D(E, E)", "D(E, x1)", "D(x1, E)", "D(E)", "D(E, w1, w2)", "sigma_prime(sigma_prime(x1))", "log(0)",
    "sqrt(-1)", "1/0", "0/0", "0**0", "0**-1", "max()", "min(x1)", "x1^x2^y1", "-" * 5000 + "x1",
    "x1**(1/3)", "10**10**10", "2**64**64", "sigmoid()", "sigmoid(x1, x2)", "exp", "E(x1)", "é", "x1 == x2",
    "x1 < x2", "'abc'", "\\input{/etc/passwd}", "\x00", "", " ", "ismax(x1)", "Derivative(sigma(x1), x1)",
    "Derivative(x1, x1, 1000000)", "Integral(x1, x1)", "sum(x1, k, 1, 10**9)", "exp(1000000)",
    "exp(-1e308)", "log(-1)", "sigmoid(1e308)", "relu(x1)**0.5", "x1**x1**x1**x1**x1**x1", "w1*x1 + w2*x2 + b1",
    "sigmoid(w1*x1 + w2*x2 + b1)", "1/(1 + exp(-neth1))", "(outo1 - y1)*outo1*(1 - outo1)",
]
LATEX_HOSTILE = [
    r"\input{/etc/passwd}", r"\write18{id}", r"\catcode`\^=7", "^^5c", r"\frac{}{}", r"\frac{1}", "{" * 3000,
    r"\sum_{k=1}^{1000000000} x_k", r"\sum_{k=1}^{n} y_k", r"\sum_{k=1}^{" + "9" * 5000 + "} x_k",
    r"\left( x_1", r"x_1 \right)", r"\sqrt[3]{x_1}", r"e^{e^{e^{e^{x_1}}}}", r"x_1^{99999999}", r"\def\a{\a}\a",
    r"\frac{\partial E}{\partial E}", r"\frac{\partial}{\partial w_5}", r"\delta^{99}_{99}", r"w^{2}_{" + "1" * 500 + "}",
    r"[a^F_{1,11} = \max]", r"\sigma'''''(x_1)", r"\int x_1 dx_1", r"\begin{matrix} 1 \end{matrix}", "\\", "$x_1$",
    r"\mathrm{" * 500 + "x" + "}" * 500, "x_1" + r" \cdot x_1" * 3000,
]


def toml_str(text: str) -> str:
    """A TOML basic string holding exactly `text`."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\u{code:04x}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append("\\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# ---------------------------------------------------------------------------
# Mutations of shipped files
# ---------------------------------------------------------------------------


@st.composite
def mutated(draw, seed: bytes, formulas: st.SearchStrategy | None = None) -> tuple[bytes, str]:
    """The seed file with one to three mutations; and a note of what was done."""
    data = bytearray(seed)
    notes = []
    for op in draw(st.lists(st.sampled_from(
            ["value", "value", "value", "formula", "formula", "flip", "delete", "duplicate", "swap", "bom", "key",
             "truncate", "append"]),
            min_size=1, max_size=2)):
        text = data.decode("utf-8", errors="surrogateescape")
        lines = text.split("\n")
        assignments = [i for i, line in enumerate(lines) if "=" in line and not line.lstrip().startswith("#")]
        strings = [i for i in assignments if lines[i].rstrip().endswith(("\"", "'"))]
        if op == "flip" and data:
            at = draw(st.integers(0, len(data) - 1))
            bit = draw(st.integers(1, 255))
            data[at] ^= bit
            notes.append(f"byte {at} ^= {bit}")
            continue
        if op == "truncate" and data:
            at = draw(st.integers(0, len(data) - 1))
            del data[at:]
            notes.append(f"truncated at {at}")
            continue
        if op == "bom":
            text = "\ufeff" + text
            notes.append("BOM")
        elif op in ("delete", "duplicate", "swap") and lines:
            i = draw(st.integers(0, len(lines) - 1))
            if op == "delete":
                notes.append(f"deleted line {i + 1}")
                del lines[i]
            elif op == "duplicate":
                notes.append(f"duplicated line {i + 1}")
                lines.insert(i, lines[i])
            else:
                j = draw(st.integers(0, len(lines) - 1))
                lines[i], lines[j] = lines[j], lines[i]
                notes.append(f"swapped lines {i + 1} and {j + 1}")
            text = "\n".join(lines)
        elif op == "value" and assignments:
            i = draw(st.sampled_from(assignments))
            value = draw(st.sampled_from(HOSTILE_VALUES))
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {value}"
            notes.append(f"line {i + 1}: {key.strip()} = {value[:40]}")
            text = "\n".join(lines)
        elif op == "formula" and strings:
            i = draw(st.sampled_from(strings))
            formula = draw(formulas if formulas is not None else st.sampled_from(HOSTILE_FORMULAS))
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {toml_str(formula)}"
            notes.append(f"line {i + 1}: {key.strip()} = {formula[:40]!r}")
            text = "\n".join(lines)
        elif op == "key" and assignments:
            i = draw(st.sampled_from(assignments))
            key = draw(st.sampled_from(["k" * 5000, '"σ😀"', '"a.b"', "a.b.c", '""', "network", "values",
                                        "name", "x1", "__class__", '"\\u0000"']))
            lines[i] = f"{key} =" + lines[i].split("=", 1)[1]
            notes.append(f"line {i + 1}: key {key[:20]}")
            text = "\n".join(lines)
        elif op == "append":
            extra = draw(st.sampled_from([
                "\n[values]\nx1 = 1e308\n", "\n[network]\nname = 'again'\n", "\n[[layer]]\ntype = 'conv'\nfilters = 100000\nkernel = 1\n",
                "\n[[layer]]\ntype = 'maxpool'\nsize = 0\n", "\n[[layer]]\ntype = 'dense'\nunits = -1\n",
                "\n[equations]\nz = 'z'\n", "\n[latex]\nE = '\\\\input{/etc/passwd}'\n", "\n[definitions]\nq = 'q'\n",
                "\n[[claim]]\nname = 'x'\nwrt = 'nothing'\nformula = '1'\n", "\n[[claim]]\n", "\nexpect = 'proven'\n",
                "\n[[formula]]\nid = 'z'\nlhs = 'delta[l, j]'\nrhs = '0'\nfor = { l = '1..100000000', j = '1..100000000' }\n",
                "\n" + "[[claim]]\nname = 'c'\nkind = 'identity'\nlhs = 'x1'\nrhs = 'x1'\n" * 300,
            ]))
            text = text + extra
            notes.append(f"appended {extra.strip()[:40]!r}")
        data = bytearray(text.encode("utf-8", errors="surrogateescape"))
    return bytes(data), "; ".join(notes)


# ---------------------------------------------------------------------------
# Grammar-aware formulas
# ---------------------------------------------------------------------------

NETWORK_NAMES = {
    "two-two-two": dict(
        names=["x1", "x2", "y1", "y2", "w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "b1", "b2",
               "neth1", "neth2", "outh1", "outh2", "neto1", "neto2", "outo1", "outo2"],
        cost="E", wrt=["w1", "w5", "b1", "b2", "neto1", "outh2", "x1"],
        latex=["x_1", "x_2", "y_1", "y_2", "w_1", "w_5", "w_8", "b_1", "b_2", "net_{h1}", "out_{h1}",
               "out_{o1}", "out_{o2}", "net_{o2}", r"\delta_{o1}", "E"],
    ),
    "generic-2-3-2": dict(
        names=["x1", "x2", "w2_1_1", "w2_3_2", "b2_1", "w3_1_1", "w3_2_3", "b3_2", "z2_1", "a2_1", "z3_1", "a3_2",
               "delta2_1", "delta3_1", "delta3_2", "a1_1"],
        cost="C", wrt=["w2_1_1", "b3_2", "z2_1", "z3_1", "a2_2"],
        latex=[r"w^2_{11}", r"w^{3}_{23}", r"b^2_1", r"z^2_1", r"a^3_2", r"\delta^2_1", r"\delta^3_2", "x_1", "C"],
    ),
    "zhou-2-2-2": dict(
        names=["x1", "x2", "y1", "y2", "v11", "v12", "v21", "w11", "w21", "gamma1", "theta2", "alpha1", "b1",
               "b2", "beta1", "yhat1", "yhat2"],
        cost="E", wrt=["v11", "w21", "gamma2", "theta1", "b1", "beta2"],
        latex=[r"v_{11}", r"w_{21}", r"\gamma_1", r"\theta_2", r"\alpha_1", r"b_1", r"\beta_1", r"\hat{y}_1",
               r"y_1", r"x_2", r"\eta"],
    ),
}
FUNCTIONS = ["sigmoid", "exp", "log", "tanh", "sqrt", "relu", "sigma", "sigma_prime", "ln"]


def sympy_formulas(names: list[str], cost: str, wrt: list[str] | None = None) -> st.SearchStrategy[str]:
    leaves = st.one_of(
        st.sampled_from(names),
        st.sampled_from(names),
        st.integers(0, 9).map(str),
        st.sampled_from(["0.5", "1/2", "0.05", "1e-3", "2", "-1"]),
        st.sampled_from(wrt or names).map(lambda n: f"D({cost}, {n})"),
    )

    def extend(children):
        return st.one_of(
            st.tuples(children, st.sampled_from(["+", "-", "*", "/"]), children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(children, st.sampled_from(["+", "-", "*"]), children).map(lambda t: f"{t[0]}{t[1]}{t[2]}"),
            st.tuples(children, st.sampled_from(["2", "3", "-1", "(1/2)", "0.5", "64", "65", "x1", "-64"])).map(
                lambda t: f"({t[0]})**{t[1]}"),
            st.tuples(st.sampled_from(FUNCTIONS), children).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(st.sampled_from(["max", "min"]), children, children).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
            st.lists(children, min_size=2, max_size=4).map(" + ".join),
            children.map(lambda c: f"-{c}"),
        )

    return st.recursive(leaves, extend, max_leaves=10)


def latex_formulas(names: list[str], cost: str, hostile: bool = True) -> st.SearchStrategy[str]:
    leaves = st.one_of(
        st.sampled_from(names),
        st.sampled_from(names),
        st.sampled_from(names),
        st.integers(0, 9).map(str),
        st.sampled_from(names).map(lambda n: rf"\frac{{\partial {cost}}}{{\partial {n}}}"),
        *([st.sampled_from(LATEX_HOSTILE)] if hostile else []),
    )

    def extend(children):
        return st.one_of(
            st.tuples(children, st.sampled_from([" + ", " - ", " ", r" \cdot ", r"\, "]), children).map("".join),
            st.tuples(children, children).map(lambda t: rf"\frac{{{t[0]}}}{{{t[1]}}}"),
            st.tuples(children, st.sampled_from(["2", "3", "-1", "{1/2}", r"\prime"])).map(lambda t: f"{{{t[0]}}}^{{{t[1]}}}"),
            children.map(lambda c: rf"\left({c}\right)"),
            children.map(lambda c: rf"\Big({c}\Big)"),
            st.tuples(st.sampled_from([r"\sigma", r"\sigma'", r"\sigma^{\prime}", r"\exp", r"\log", r"\ln", r"\tanh"]),
                      children).map(lambda t: f"{t[0]}({t[1]})"),
            children.map(lambda c: rf"\sqrt{{{c}}}"),
            children.map(lambda c: f"e^{{{c}}}"),
            children.map(lambda c: rf"\sum_{{k=1}}^{{2}} {c}"),
        )

    return st.recursive(leaves, extend, max_leaves=8)


@st.composite
def generated_claims(draw) -> Case:
    network = draw(st.sampled_from(sorted(NETWORK_NAMES)))
    info = NETWORK_NAMES[network]
    lines = [f"network = {toml_str(network)}", 'title = "fuzz"']
    if draw(st.booleans()):
        lines += ["[definitions]", f"q1 = {toml_str(draw(sympy_formulas(info['names'], info['cost'], info['wrt'])))}"]
    count = draw(st.integers(1, 3))
    for i in range(count):
        syntax = draw(st.sampled_from(["sympy", "sympy", "latex"]))
        kind = draw(st.sampled_from(["gradient", "gradient", "identity", "update"]))
        names = info["latex"] if syntax == "latex" else info["names"] + (["q1"] if "q1 =" in "\n".join(lines) else [])
        hostile = draw(st.integers(0, 3)) == 0
        formulas = (latex_formulas(names, info["cost"], hostile) if syntax == "latex"
                    else sympy_formulas(names, info["cost"], info["wrt"]))
        lines += ["", "[[claim]]", f"name = {toml_str(f'claim {i}')}", f"kind = {toml_str(kind)}"]
        if syntax == "latex":
            lines.append('syntax = "latex"')
        if kind == "identity":
            lines += [f"lhs = {toml_str(draw(formulas))}", f"rhs = {toml_str(draw(formulas))}"]
        else:
            wrt = draw(st.sampled_from(info["wrt"]) if draw(st.integers(0, 5)) else
                       st.sampled_from(["", "nothing", info["cost"], "σ"]))
            lines += [f"wrt = {toml_str(wrt)}", f"formula = {toml_str(draw(formulas))}"]
            if kind == "update":
                lines.append(f"rate = {toml_str(draw(st.sampled_from(['eta', 'x1', '', '2'])))}")
        if draw(st.integers(0, 5)) == 0:
            lines.append('assume = { lhs = "y1 + y2", rhs = "1", text = "one-hot" }')
        if draw(st.booleans()):
            lines.append(f"expect = {toml_str(draw(st.sampled_from(['proven', 'refuted', 'undecided', 'maybe'])))}")
    text = "\n".join(lines) + "\n"
    argv = ["check", "{in}/claims.toml", "--budget", BUDGET]
    if draw(st.booleans()):
        argv.append("--json")
    return Case("formulas-grammar", argv, {"claims.toml": text.encode()}, note=f"generated claims on {network}",
                timeout=TIMEOUT)


# ---------------------------------------------------------------------------
# Surfaces
# ---------------------------------------------------------------------------


def spec_command(draw, path: str) -> list[str]:
    command = draw(st.sampled_from(["derive", "derive-json", "derive-latex", "prove", "gradcheck", "train", "report"]))
    return {
        "derive": ["derive", path],
        "derive-json": ["derive", path, "--json"],
        "derive-latex": ["derive", path, "--latex"],
        "prove": ["prove", path, "--budget", BUDGET, "--json"],
        "gradcheck": ["gradcheck", path, "--points", "1", "--batch", "2", "--json"],
        "train": ["train", path, "--data", "values", "--epochs", "1", "--json"],
        "report": ["report", path, "-o", "r.tex", "--budget", BUDGET],
    }[command]


@st.composite
def spec_cases(draw) -> Case:
    name = draw(st.sampled_from(sorted(SPEC_SEEDS)))
    content, note = draw(mutated(SPEC_SEEDS[name]))
    argv = spec_command(draw, "{in}/spec.toml")
    return Case("spec", argv, {"spec.toml": content}, note=f"{name}: {note}", timeout=TIMEOUT)


@st.composite
def claims_cases(draw) -> Case:
    name = draw(st.sampled_from(sorted(CLAIMS_SEEDS)))
    names = NETWORK_NAMES.get("zhou-2-2-2" if "zhou" in name else "two-two-two")
    content, note = draw(mutated(CLAIMS_SEEDS[name], formulas=st.one_of(
        st.sampled_from(HOSTILE_FORMULAS), sympy_formulas(names["names"], names["cost"]),
        latex_formulas(names["latex"], names["cost"]))))
    files = {"claims.toml": content, "two-two-two.toml": TWO}
    command = draw(st.sampled_from(["check", "check-json", "report", "two"]))
    argv = {
        "check": ["check", "{in}/claims.toml", "--budget", BUDGET],
        "check-json": ["check", "{in}/claims.toml", "--budget", BUDGET, "--json"],
        "report": ["report", "{in}/claims.toml", "-o", "graded.tex", "--budget", BUDGET],
        "two": ["check", "{in}/claims.toml", "{in}/claims.toml", "--budget", BUDGET, "--json"],
    }[command]
    return Case("claims", argv, files, note=f"{name}: {note}", timeout=TIMEOUT)


def template_expressions() -> st.SearchStrategy[str]:
    index = st.sampled_from(["l", "l+1", "l-1", "1", "L", "l+100", "-1", "0", "10**9", "j"])
    leaves = st.one_of(
        st.tuples(index, st.sampled_from(["j", "k", "1"]), st.sampled_from(["k", "j", "1"])).map(
            lambda t: f"w[{t[0]}, {t[1]}, {t[2]}]"),
        st.tuples(st.sampled_from(["b", "z", "a", "delta"]), index, st.sampled_from(["j", "k", "1"])).map(
            lambda t: f"{t[0]}[{t[1]}, {t[2]}]"),
        st.sampled_from(["x[k]", "y[j]", "t[j]", "L", "size[l]", "size[L]", "1", "2", "C", "w[l, j]",
                         "w[l, j, k, k]", "q[l]", "delta[l]"]),
    )

    def extend(children):
        return st.one_of(
            st.tuples(children, st.sampled_from(["+", "-", "*", "/"]), children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            st.tuples(st.sampled_from(["sigma_prime", "sigma", "exp", "log"]), children).map(lambda t: f"{t[0]}({t[1]})"),
            st.tuples(children, st.sampled_from(["1", "2"]), st.sampled_from(["size[l+1]", "size[l]", "3", "10**9",
                                                                                "0", "-5", "size[l+7]"])).map(
                lambda t: f"sum({t[0]}, k, {t[1]}, {t[2]})"),
            children.map(lambda c: f"D(C, {c})"),
        )

    return st.recursive(leaves, extend, max_leaves=6)


RANGES = ["2..L", "2..L-1", "1..size[l]", "1..size[l-1]", "1..size[l+1]", "1..1000000000", "1..999999999999",
          "L..2", "0..0", "1..1", "size[l]..1", "1..size[99]", "a..b", "", "1..", "..", "1...3", "1..3..5",
          "1.." + "9" * 5000, "-5..-1"]


@st.composite
def generated_formula_set(draw) -> tuple[bytes, str]:
    lines = [f"id = {toml_str(draw(st.sampled_from(['fz', 'nielsen', '', 'x' * 3000, 'σ'])))}", 'title = "fuzz"',
             'source = "fuzz"']
    for i in range(draw(st.integers(1, 3))):
        ranges = {"l": draw(st.sampled_from(RANGES)), "j": draw(st.sampled_from(RANGES))}
        if draw(st.booleans()):
            ranges["k"] = draw(st.sampled_from(RANGES))
        for_table = ", ".join(f"{k} = {toml_str(v)}" for k, v in ranges.items())
        lines += ["", "[[formula]]", f'id = "f{i}"', 'family = "fam"', f"latex = {toml_str(draw(st.sampled_from(LATEX_HOSTILE)))}",
                  f"when = {{ kind = {toml_str(draw(st.sampled_from(['layered', 'cnn', 'free-form', 'nothing'])))} }}",
                  f"for = {{ {for_table} }}",
                  f"lhs = {toml_str(draw(template_expressions()))}", f"rhs = {toml_str(draw(template_expressions()))}"]
    return ("\n".join(lines) + "\n").encode(), "generated"


@st.composite
def formula_set_cases(draw) -> Case:
    if draw(st.integers(0, 2)) == 0:
        content, note = draw(generated_formula_set())
        network = draw(st.sampled_from(["generic-2-3-2", "book-12-3-2"]))
    else:
        name = draw(st.sampled_from(sorted(FORMULA_SEEDS)))
        content, note = draw(mutated(FORMULA_SEEDS[name], formulas=st.one_of(
            st.sampled_from(HOSTILE_FORMULAS), template_expressions())))
        network = FORMULA_NETWORK.get(name) or "{in}/net.toml"  # a module layer's set: its own small network
        note = f"{name}: {note}"
    files = {"set.toml": content}
    if network == "{in}/net.toml":
        layer = name.removesuffix(".toml")
        files["net.toml"] = f'[network]\nname = "m"\nbatch = 2\ninput = 1\n[[layer]]\ntype = "{layer}"\n'.encode()
    argv = ["prove", network, "--formulas", "{in}/set.toml", "--budget", BUDGET]
    if draw(st.booleans()):
        argv.append("--json")
    return Case("formula-sets", argv, files, note=note, timeout=TIMEOUT)


@st.composite
def template_cases(draw) -> Case:
    hostile = st.sampled_from(TEMPLATE_ATTACKS)
    if draw(st.booleans()):
        name = draw(st.sampled_from(sorted(TEMPLATE_SEEDS)))
        content, note = draw(mutated(TEMPLATE_SEEDS[name]))
        if draw(st.booleans()):
            attack = draw(hostile)
            text = content.decode("utf-8", errors="surrogateescape")
            lines = text.split("\n")
            at = draw(st.integers(0, len(lines)))
            lines.insert(at, attack)
            content = "\n".join(lines).encode("utf-8", errors="surrogateescape")
            note += f"; inserted {attack[:60]!r} at line {at + 1}"
        note = f"{name}: {note}"
    else:
        parts = draw(st.lists(hostile, min_size=1, max_size=3))
        content = ("\\documentclass{article}\\begin{document}\n" + "\n".join(parts) + "\n\\end{document}\n").encode()
        note = "attacks: " + " | ".join(p[:50] for p in parts)
    target = draw(st.sampled_from(["spec", "claims", "class"]))
    files = {"t.tex": content, "two-two-two.toml": TWO, "claims.toml": CLAIMS_SEEDS["two-two-two-homework.toml"]}
    argv = {
        "spec": ["report", "{in}/two-two-two.toml", "-o", "r.tex", "--template", "{in}/t.tex", "--budget", BUDGET],
        "claims": ["report", "{in}/claims.toml", "-o", "r.tex", "--template", "{in}/t.tex", "--budget", BUDGET],
        "class": ["report", "{in}/claims.toml", "{in}/claims.toml", "-o", "graded", "--template", "{in}/t.tex",
                  "--budget", BUDGET],
    }[target]
    if draw(st.booleans()):
        argv.append("--json")
    return Case("templates", argv, files, note=note, timeout=TIMEOUT)


TEMPLATE_ATTACKS = [
    r"\VAR{ cycler.__init__.__globals__.os.popen('id').read() }",
    r"\VAR{ joiner.__init__.__globals__ }",
    r"\VAR{ lipsum.__globals__['os'].popen('id').read() }",
    r"\VAR{ ''.__class__.__mro__[1].__subclasses__() }",
    r"\VAR{ network.__class__.__mro__ }",
    r"\VAR{ t.__globals__ }",
    r"\VAR{ self.__init__.__globals__ }",
    r"\VAR{ self._TemplateReference__context }",
    r"\VAR{ config }\VAR{ request }",
    r"\VAR{ range(100000)|list|length }",
    r"\BLOCK{ for i in range(100000) }\BLOCK{ for j in range(100000) }x\BLOCK{ endfor }\BLOCK{ endfor }",
    r"\VAR{ 9**9**9 }",
    r"\VAR{ 'x' * 10**10 }",
    r"\VAR{ [1] * 10**10 }",
    r"\BLOCK{ include '/etc/passwd' }",
    r"\BLOCK{ include '../../../../../../etc/passwd' }",
    r"\BLOCK{ include 'network.tex' }",
    r"\BLOCK{ extends 't.tex' }",
    r"\BLOCK{ include 't.tex' }",
    r"\BLOCK{ import 'macros.tex' as m }\VAR{ m.nonexistent() }",
    r"\BLOCK{ macro r(n) }\VAR{ r(n + 1) }\BLOCK{ endmacro }\VAR{ r(0) }",
    r"\VAR{ undefined_name }",
    r"\VAR{ title|attr('__class__') }",
    r"\VAR{ t('no such key') }",
    r"\VAR{ t() }",
    r"\VAR{ 1/0 }",
    r"\VAR{ network.equations[1000000000] }",
    r"\BLOCK{ if }",
    r"\VAR{",
    r"\BLOCK{ endfor }",
    "{{ 7*7 }}{% for x in range(3) %}{{ x }}{% endfor %}",
    r"\VAR{ network.name.format(network) }",
    r"\VAR{ title.format_map(network) }",
    r"\VAR{ network|tojson }",
    r"\VAR{ lipsum(n=100000) }",
    r"\VAR{ network.name.__class__.__base__.__subclasses__() }",
    r"\BLOCK{ set x = namespace() }\BLOCK{ set x.__class__ = 1 }",
    r"\VAR{ generated|string|length }",
    r"\#{ unterminated comment",
    "\\VAR{ \u202e }",
    r"\BLOCK{ raw }\VAR{ x }\BLOCK{ endraw }",
    r"\VAR{ version * 100000000 }",
    r"\VAR{ (network.name ~ network.name) * 100000000 }",
    r"\BLOCK{ for x in network recursive }\VAR{ loop(x) }\BLOCK{ endfor }",
]


def npz_bytes(arrays: dict, compressed: bool = False) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def npy_header(descr: str, shape: tuple, fortran: bool = False) -> bytes:
    header = repr({"descr": descr, "fortran_order": fortran, "shape": shape}).encode("latin1")
    header += b" " * ((64 - (10 + len(header) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header


def crafted_npz(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


DTYPES = ["float64", "float32", "float16", "int8", "int64", "uint64", "bool", "complex128", "U3", "datetime64[s]", "object"]
ARRAY_VALUES = [0.0, 1.0, -1.0, 0.5, 1e308, -1e308, 5e-324, float("nan"), float("inf"), 1e9, 2.0**62]


@st.composite
def arrays(draw, rows: st.SearchStrategy[int], columns: st.SearchStrategy[tuple]) -> np.ndarray:
    n = draw(rows)
    shape = (n, *draw(columns)) if draw(st.integers(0, 6)) else draw(st.sampled_from([(), (n,), (n, 1, 1, 1, 1)]))
    dtype = draw(st.sampled_from(DTYPES)) if draw(st.integers(0, 3)) == 0 else "float64"
    size = int(np.prod(shape)) if shape else 1
    values = draw(st.lists(st.sampled_from(ARRAY_VALUES) if draw(st.integers(0, 3)) == 0 else
                           st.sampled_from([0.0, 1.0, 0.25, 0.75]), min_size=min(size, 64), max_size=min(size, 64)))
    flat = np.resize(np.array(values or [0.0]), size)
    if dtype == "object":
        return np.array([object()] * size, dtype=object).reshape(shape) if size else np.empty(shape, dtype=object)
    with np.errstate(all="ignore"):
        try:
            return flat.astype(dtype).reshape(shape)
        except (ValueError, OverflowError, TypeError):
            return np.zeros(shape)


@st.composite
def data_cases(draw) -> Case:
    network = draw(st.sampled_from(["two-two-two", "book-12-3-2", "book-cnn"]))
    inputs, outputs = {"two-two-two": (2, 2), "book-12-3-2": (12, 2), "book-cnn": (36, 3)}[network]
    rows = st.sampled_from([0, 1, 3, 8])
    x = draw(arrays(rows, st.sampled_from([(inputs,), (inputs + 1,), (0,), (6, 6), (1, 6, 6), (3, 4)])))
    if draw(st.booleans()):
        labels = draw(st.lists(st.sampled_from([0, 1, 2, -1, 10**9, 2**62]), min_size=len(x) if x.ndim else 1,
                               max_size=len(x) if x.ndim else 1))
        y = np.array(labels, dtype=draw(st.sampled_from(["int64", "float64", "uint8"])) if all(
            0 <= v < 256 for v in labels) else np.int64)
    else:
        y = draw(arrays(st.just(len(x) if x.ndim else 1), st.sampled_from([(outputs,), (outputs + 1,), (1,)])))
    contents = {"x": x, "y": y}
    if draw(st.booleans()):
        contents["x_test"], contents["y_test"] = x[:2] if x.ndim else x, y[:2] if y.ndim else y
        if draw(st.booleans()):
            del contents[draw(st.sampled_from(["x_test", "y_test"]))]
    if draw(st.integers(0, 5)) == 0:
        del contents[draw(st.sampled_from(["x", "y"]))]
    if draw(st.integers(0, 5)) == 0:
        contents["extra"] = np.zeros(3)
    try:
        data = npz_bytes(contents, compressed=draw(st.booleans()))
    except Exception:
        data = b"PK\x05\x06" + b"\x00" * 18
    if draw(st.integers(0, 5)) == 0:
        at = draw(st.integers(0, max(0, len(data) - 1)))
        data = data[:at]
        note_cut = f", truncated at {at}"
    else:
        note_cut = ""
    note = ", ".join(f"{k}: {v.dtype} {v.shape}" for k, v in contents.items()) + note_cut
    argv = ["train", network, "--data", "{in}/d.npz", "--epochs", "1"]
    if draw(st.booleans()):
        argv.append("--json")
    return Case("npz-data", argv, {"d.npz": data}, note=note, timeout=TIMEOUT)


TWO_PARAMETERS = ["w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "b1", "b2"]
BOOK_BLOCKS = {"W2": (3, 12), "b2": (3,), "W3": (2, 3), "b3": (2,)}


@st.composite
def load_cases(draw) -> Case:
    network = draw(st.sampled_from(["two-two-two", "book-12-3-2"]))
    blocks = {p: () for p in TWO_PARAMETERS} if network == "two-two-two" else dict(BOOK_BLOCKS)
    contents = {}
    for name, shape in blocks.items():
        choice = draw(st.integers(0, 9))
        if choice == 0:
            continue  # missing
        if choice == 1:
            shape = draw(st.sampled_from([(1,), (2, 2), (0,), (3, 13), ()]))
        value = draw(st.sampled_from(ARRAY_VALUES)) if draw(st.integers(0, 3)) == 0 else 0.1
        dtype = draw(st.sampled_from(DTYPES)) if draw(st.integers(0, 4)) == 0 else "float64"
        if dtype == "object":
            contents[name] = np.array([object()], dtype=object)
            continue
        with np.errstate(all="ignore"):
            try:
                contents[name] = np.full(shape, value).astype(dtype)
            except (ValueError, OverflowError, TypeError):
                contents[name] = np.zeros(shape)
    if draw(st.integers(0, 5)) == 0:
        contents["W9"] = np.zeros(2)
    data = npz_bytes(contents, compressed=draw(st.booleans()))
    if draw(st.integers(0, 5)) == 0:
        data = data[: draw(st.integers(0, max(0, len(data) - 1)))]
    data_set = "values" if network == "two-two-two" else "book-0-1"
    argv = ["train", network, "--data", data_set, "--epochs", "1", "--load", "{in}/p.npz"]
    if draw(st.booleans()):
        argv += ["--save", "{out}/saved.npz"]
    if draw(st.booleans()):
        argv.append("--json")
    note = ", ".join(f"{k}: {v.dtype} {v.shape}" for k, v in contents.items())
    return Case("npz-load", argv, {"p.npz": data}, note=note, timeout=TIMEOUT,
                expect_outputs=["saved.npz"] if "--save" in argv else [])


FLOATS = ["0", "-0", "-1", "1e-300", "5e-324", "1e308", "1e309", "inf", "-inf", "nan", "NaN", "0x10", "1_0", "",
          " 1", "1e", "9" * 5000, "0.1", "0.5", "2", "１"]
INTS = ["0", "-1", "1", "2", "3", "2147483648", "4294967296", "-9223372036854775809", "99999999999999999999",
        "9" * 5000, "1.5", "", "0x10", "1_000", "٣", "-0"]
SMALL_INTS = ["0", "1", "2", "-1", "-5", "9" * 5000, "1.5", "", "٣"]  # where a huge value is legitimately long work
PATHS = ["/dev/zero", "/dev/null", "", ".", "{in}", "/nonexistent/dir/x.npz", "{in}/spec.toml", "a" * 300 + ".npz",
         "out.pdf", "out.tex", "sub/none/x.tex", "-", "{in}/fifo", "{out}/ok.npz", "x.npz", "{in}/link"]
SPECS = ["two-two-two", "{in}/spec.toml", "generic-2-3-2", "book-cnn", "zhou-2-2-2", "softmax-4-5-3",
         "nonexistent", "", "/dev/zero", "{in}/fifo", "{in}", "../" * 50 + "etc/passwd", "a" * 5000, "-",
         "cross-entropy-l2-4-5-3", "{in}/link"]


@st.composite
def option_cases(draw) -> Case:
    command = draw(st.sampled_from(["prove", "check", "train", "train", "gradcheck", "report", "derive", "list"]))
    opt = lambda name, values: [name, draw(st.sampled_from(values))] if draw(st.booleans()) else []  # noqa: E731
    spec = draw(st.sampled_from(SPECS))
    if command == "prove":
        argv = ["prove", spec] + ["--budget", draw(st.sampled_from(FLOATS + [BUDGET] * 4))] + opt("--seed", INTS) + opt(
            "--formulas", ["nielsen", "{in}/spec.toml", "/dev/zero", "nothing", "zhou", "{in}/fifo"])
    elif command == "check":
        argv = ["check", draw(st.sampled_from(["{in}/claims.toml", "{in}/spec.toml", "/dev/zero", "{in}/fifo", "{in}"]))]
        argv += ["--budget", draw(st.sampled_from(FLOATS + [BUDGET] * 4))] + opt("--seed", INTS)
    elif command == "train":
        argv = ["train", spec, "--data", draw(st.sampled_from(["values", "book-0-1", "book-1-2-3", "digits",
                                                              "/dev/zero", "{in}/fifo", "nothing", "", "{in}/spec.toml"]))]
        argv += ["--epochs", draw(st.sampled_from(SMALL_INTS))] + opt("--batch", INTS) + opt("--lr", FLOATS)
        argv += opt("--momentum", FLOATS) + opt("--lmbda", FLOATS) + opt("--seed", INTS)
        argv += opt("--dtype", ["float32", "float64", "float16"]) + opt("--save", PATHS) + opt("--load", PATHS)
        argv += opt("--report", ["r.tex", "{in}/spec.toml", "/dev/null", "r.txt", "nodir/r.tex", "a" * 300 + ".tex"])
    elif command == "gradcheck":
        argv = ["gradcheck", spec, "--points", draw(st.sampled_from(SMALL_INTS))] + opt("--batch", INTS) + opt(
            "--seed", INTS) + opt("--dtype", ["float32", "float64"])
    elif command == "report":
        argv = ["report", spec, "-o", draw(st.sampled_from(PATHS + ["r.tex"] * 3)), "--budget",
                draw(st.sampled_from(FLOATS + [BUDGET] * 4))]
        argv += opt("--seed", INTS) + opt("--explain", ["w1", "E", "nothing", "", "x1", "w2_1_1", "σ", "a" * 5000])
        argv += opt("--lang", ["en", "zh", "fr"]) + opt("--formulas", ["nielsen", "{in}/spec.toml", "/dev/zero"])
    elif command == "derive":
        argv = ["derive", spec] + draw(st.sampled_from([[], ["--json"], ["--latex"], ["--json", "--latex"]]))
    else:
        argv = ["list"] + draw(st.sampled_from([[], ["--json"], ["--bogus"]]))
    if command not in ("derive", "list") and draw(st.booleans()):
        argv.append("--json")
    files = {"spec.toml": TWO, "claims.toml": CLAIMS_SEEDS["two-two-two-homework.toml"],
             "two-two-two.toml": TWO, "fifo": "fifo", "link": ("symlink", "/dev/zero")}
    return Case("options", argv, files, note=command, timeout=TIMEOUT)


# ---------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------


def test_fuzz_spec_files(harness):
    run_all(harness, "spec", spec_cases(), 70)


def test_fuzz_claims_files(harness):
    run_all(harness, "claims", claims_cases(), 50)


def test_fuzz_grammar_formulas(harness):
    run_all(harness, "formulas-grammar", generated_claims(), 50)


def test_fuzz_formula_sets(harness):
    run_all(harness, "formula-sets", formula_set_cases(), 40)


def test_fuzz_npz_data(harness):
    run_all(harness, "npz-data", data_cases(), 30)


def test_fuzz_npz_load(harness):
    run_all(harness, "npz-load", load_cases(), 20)


def test_fuzz_templates(harness):
    run_all(harness, "templates", template_cases(), 30)


def test_fuzz_options(harness):
    run_all(harness, "options", option_cases(), 70)


# -- hand-written hostile cases ----------------------------------------------------


class _RepeatingDeflate:
    """Raw deflate (zipfile's own method and level) that ends every write with a full flush.

    After a full flush the compressor starts from an empty window, so a write equal to the last
    one compresses to the same bytes, which are reused: the bomb's 2 GiB of zeros are deflated as
    one 16 MiB block, not 128 (zlib took about 10 s for them). The stream is as valid and as
    dense (about 1 MiB per GiB), with the same CRC and sizes in the zip's headers.
    """

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self._last: tuple[bytes, bytes] | None = None

    def compress(self, data) -> bytes:
        data = bytes(data)
        if self._last is not None and self._last[0] == data:
            return self._last[1]
        out = self._deflate.compress(data) + self._deflate.flush(zlib.Z_FULL_FLUSH)
        self._last = (data, out)
        return out

    def flush(self) -> bytes:
        return self._deflate.flush()


def _bomb() -> bytes:
    """An .npz whose x and y inflate to 1 GiB each (about 1 MiB each on disk)."""
    rows = 2**26
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in ("x.npy", "y.npy"):
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with archive.open(info, "w", force_zip64=True) as member:
                assert member._compressor is not None  # zipfile's deflater, replaced before any write
                member._compressor = _RepeatingDeflate()
                member.write(npy_header("<f8", (rows, 2)))
                zeros = bytes(2**24)
                for _ in range(rows * 16 // len(zeros)):
                    member.write(zeros)
    return buffer.getvalue()


_BOMB: list[bytes] = []


def bomb() -> bytes:
    if not _BOMB:
        _BOMB.append(_bomb())
    return _BOMB[0]


def _valid_npz() -> bytes:
    return npz_bytes({"x": np.zeros((4, 2)), "y": np.zeros((4, 2))})


HUGE_HEADER = crafted_npz({"x.npy": npy_header("<f8", (2**37,)) + b"\x00" * 64,
                           "y.npy": npy_header("<f8", (2**37,)) + b"\x00" * 64})
HUGE_HEADER_2D = crafted_npz({"x.npy": npy_header("<f8", (2**20, 2**20)) + b"\x00" * 64,
                              "y.npy": npy_header("<f8", (2, 2)) + b"\x00" * 32})
NEGATIVE_SHAPE = crafted_npz({"x.npy": npy_header("<f8", (-1, 2)) + b"\x00" * 64,
                              "y.npy": npy_header("<f8", (2, 2)) + b"\x00" * 32})
HUGE_PARAMS = crafted_npz({f"{p}.npy": npy_header("<f8", (2**37,)) for p in TWO_PARAMETERS})


def hostile_cases():
    two = {"spec.toml": TWO}
    cases = [
        ("template-cycler-popen", Case("hostile", ["report", "{in}/spec.toml", "-o", "r.tex", "--template", "{in}/t.tex"],
                                       {**two, "t.tex": rb"\VAR{ cycler.__init__.__globals__.os.popen('id').read() }"})),
        ("template-nested-range", Case("hostile", ["report", "{in}/spec.toml", "-o", "r.tex", "--template", "{in}/t.tex"],
                                       {**two, "t.tex": TEMPLATE_ATTACKS[10].encode()})),
        ("template-pow-tower", Case("hostile", ["report", "{in}/spec.toml", "-o", "r.tex", "--template", "{in}/t.tex"],
                                    {**two, "t.tex": rb"\VAR{ 9**9**9 }"})),
        ("template-huge-string", Case("hostile", ["report", "{in}/spec.toml", "-o", "r.tex", "--template", "{in}/t.tex"],
                                      {**two, "t.tex": rb"\VAR{ (network.name ~ network.name) * 100000000 }"})),
        ("template-dev-zero", Case("hostile", ["report", "{in}/spec.toml", "-o", "r.tex", "--template", "/dev/zero"], two)),
        ("template-fifo", Case("hostile", ["report", "{in}/spec.toml", "-o", "r.tex", "--template", "{in}/t.tex"],
                               {**two, "t.tex": "fifo"})),
        ("report-pdf-hostile-name", Case("hostile", ["report", "{in}/spec.toml", "-o", "r.pdf", "--budget", BUDGET],
                                         {"spec.toml": TWO.replace(b'name = "two-two-two"',
                                                                   b'name = "\\\\input{/etc/passwd}\\\\write18{id}^^5c"')},
                                         timeout=40.0, expect_outputs=["r.pdf"])),
        ("npz-1TiB-header", Case("hostile", ["train", "two-two-two", "--data", "{in}/d.npz"], {"d.npz": HUGE_HEADER})),
        ("npz-1TiB-header-2d", Case("hostile", ["train", "two-two-two", "--data", "{in}/d.npz"], {"d.npz": HUGE_HEADER_2D})),
        ("npz-negative-shape", Case("hostile", ["train", "two-two-two", "--data", "{in}/d.npz"], {"d.npz": NEGATIVE_SHAPE})),
        ("npz-load-1TiB-header", Case("hostile", ["train", "two-two-two", "--data", "values", "--load", "{in}/p.npz"],
                                      {"p.npz": HUGE_PARAMS})),
        ("npz-zip-bomb", Case("hostile", ["train", "two-two-two", "--data", "{in}/d.npz"], {"d.npz": "bomb"})),
        ("npz-truncated", Case("hostile", ["train", "two-two-two", "--data", "{in}/d.npz"], {"d.npz": _valid_npz()[:-30]})),
        ("npz-truncated-load", Case("hostile", ["train", "two-two-two", "--data", "values", "--load", "{in}/p.npz"],
                                    {"p.npz": npz_bytes({p: np.float64(0.1) for p in TWO_PARAMETERS})[:200]})),
        ("npz-fifo", Case("hostile", ["train", "two-two-two", "--data", "{in}/d.npz"], {"d.npz": "fifo"})),
        ("npz-load-fifo", Case("hostile", ["train", "two-two-two", "--data", "values", "--load", "{in}/p.npz"],
                               {"p.npz": "fifo"})),
        ("npz-dev-zero", Case("hostile", ["train", "two-two-two", "--data", "/dev/zero"], {})),
        ("npz-load-dev-zero", Case("hostile", ["train", "two-two-two", "--data", "values", "--load", "/dev/zero"], {})),
        ("npz-directory", Case("hostile", ["train", "two-two-two", "--data", "{in}/d.npz"], {"d.npz": "dir"})),
        ("npz-load-directory", Case("hostile", ["train", "two-two-two", "--data", "values", "--load", "{in}"], {})),
        ("save-over-input", Case("hostile", ["train", "{in}/spec.toml", "--data", "values", "--save", "{in}/spec.toml"], two)),
        ("report-over-input", Case("hostile", ["report", "{in}/spec.tex", "-o", "{in}/spec.tex"],
                                   {"spec.tex": TWO})),
        ("report-pdf-beside-input-tex", Case("hostile", ["report", "{in}/s.tex", "-o", "{in}/s.pdf"], {"s.tex": TWO})),
        ("spec-dev-zero", Case("hostile", ["derive", "/dev/zero"], {})),
        ("spec-fifo", Case("hostile", ["prove", "{in}/s.toml"], {"s.toml": "fifo"})),
        ("spec-symlink-dev-zero", Case("hostile", ["derive", "{in}/s.toml"], {"s.toml": ("symlink", "/dev/zero")})),
        ("claims-network-dev-zero", Case("hostile", ["check", "{in}/c.toml"],
                                         {"c.toml": b'network = "/dev/zero"\n[[claim]]\nwrt = "w1"\nformula = "1"\n'})),
        ("claims-network-fifo", Case("hostile", ["check", "{in}/c.toml"],
                                     {"c.toml": b'network = "f.toml"\n[[claim]]\nwrt = "w1"\nformula = "1"\n', "f.toml": "fifo"})),
        ("formulas-dev-zero", Case("hostile", ["prove", "two-two-two", "--formulas", "/dev/zero"], {})),
        ("formulas-fifo", Case("hostile", ["prove", "two-two-two", "--formulas", "{in}/f.toml"], {"f.toml": "fifo"})),
        ("spec-huge-int", Case("hostile", ["derive", "{in}/s.toml"],
                               {"s.toml": b'[network]\nlayers = [' + b"9" * 5000 + b', 2]\n'})),
        ("spec-huge-layers", Case("hostile", ["derive", "{in}/s.toml"],
                                  {"s.toml": b'[network]\nlayers = [100000, 100000, 100000]\n'})),
        ("spec-huge-cnn", Case("hostile", ["derive", "{in}/s.toml"],
                               {"s.toml": b'[network]\ninput = [1000000, 1000000]\n[[layer]]\ntype = "conv"\nfilters = 1000000\n'
                                          b'kernel = 1\n[[layer]]\ntype = "dense"\nunits = 3\n'})),
        ("spec-huge-zhou", Case("hostile", ["derive", "{in}/s.toml"],
                                {"s.toml": b'[network]\nzhou = [100000, 100000, 100000]\n'})),
        ("spec-deep-nesting", Case("hostile", ["derive", "{in}/s.toml"],
                                   {"s.toml": b"[network]\nlayers = " + b"[" * 100000 + b"]" * 100000 + b"\n"})),
        ("spec-deep-formula", Case("hostile", ["derive", "{in}/s.toml"],
                                   {"s.toml": TWO.replace(b'"w1*x1 + w2*x2 + b1"',
                                                          b'"' + b"(" * 9000 + b"w1" + b")" * 9000 + b'"')})),
        ("spec-pow-tower", Case("hostile", ["derive", "{in}/s.toml"],
                                {"s.toml": TWO.replace(b'"w1*x1 + w2*x2 + b1"', b'"w1**x1**x2**b1**w2**w3**w4 + 9**9**9"')})),
        ("spec-huge-values", Case("hostile", ["derive", "{in}/s.toml", "--json"],
                                  {"s.toml": TWO.replace(b"x1 = 0.05", b"x1 = 1e308").replace(b"w1 = 0.15", b"w1 = 1e308")})),
        ("spec-nan-values", Case("hostile", ["derive", "{in}/s.toml", "--json"],
                                 {"s.toml": TWO.replace(b"x1 = 0.05", b"x1 = nan").replace(b"w1 = 0.15", b"w1 = inf")})),
        ("train-nan-values", Case("hostile", ["train", "{in}/s.toml", "--data", "values", "--json"],
                                  {"s.toml": TWO.replace(b"x1 = 0.05", b"x1 = 1e308")})),
        ("spec-bom-utf16", Case("hostile", ["derive", "{in}/s.toml"], {"s.toml": "\ufeff".encode("utf-16") + TWO})),
        ("train-lr-inf-json", Case("hostile", ["train", "two-two-two", "--data", "values", "--lr", "1e308", "--json"], {})),
        ("train-lmbda-nan", Case("hostile", ["train", "cross-entropy-l2-4-5-3", "--data", "{in}/d.npz", "--lmbda", "nan",
                                             "--epochs", "1", "--json"],
                                 {"d.npz": npz_bytes({"x": np.full((4, 4), 0.5), "y": np.eye(3)[[0, 1, 2, 0]]})})),
        ("train-lmbda-huge-json", Case("hostile", ["train", "cross-entropy-l2-4-5-3", "--data", "{in}/d.npz", "--lmbda",
                                                   "1e308", "--epochs", "2", "--json"],
                                       {"d.npz": npz_bytes({"x": np.full((6, 4), 0.5), "y": np.eye(3)[[0, 1, 2, 0, 1, 2]]})})),
        ("train-lr-huge-json", Case("hostile", ["train", "{in}/s.toml", "--data", "values", "--lr", "1e300", "--epochs", "5",
                                                "--json"],
                                    {"s.toml": b'[network]\ninputs = ["x"]\ntargets = ["y"]\ncost = "C"\n[equations]\n'
                                               b'z = "exp(w*x)"\nC = "(z - y)**2"\n[values]\nx = 1\nw = 1\ny = 0\n'})),
        ("gradcheck-huge-batch", Case("hostile", ["gradcheck", "two-two-two", "--batch", "1000000000000"], {})),
        ("prove-budget-inf", Case("hostile", ["prove", "two-two-two", "--budget", "1e308"], {})),
        ("check-budget-nan", Case("hostile", ["check", "{in}/c.toml", "--budget", "nan"],
                                  {"c.toml": CLAIMS_SEEDS["two-two-two-homework.toml"], "two-two-two.toml": TWO})),
        ("train-seed-negative", Case("hostile", ["train", "two-two-two", "--data", "values", "--seed", "-1"], {})),
        ("train-seed-huge", Case("hostile", ["train", "book-12-3-2", "--data", "book-0-1", "--epochs", "1",
                                             "--seed", "99999999999999999999"], {})),
        ("class-report-dir-is-file", Case("hostile", ["report", "{in}/c.toml", "{in}/c.toml", "-o", "{in}/c.toml"],
                                          {"c.toml": CLAIMS_SEEDS["two-two-two-homework.toml"], "two-two-two.toml": TWO})),
        ("claims-many", Case("hostile", ["check", "{in}/c.toml", "--budget", BUDGET],
                             {"c.toml": b'network = "two-two-two"\n' + b'[[claim]]\nwrt = "w1"\nformula = "x1**64"\n' * 200})),
    ]
    return cases


HOSTILE = hostile_cases()


@pytest.mark.parametrize("case", [c for _, c in HOSTILE], ids=[name for name, _ in HOSTILE])
def test_fuzz_hostile(harness, case):
    if case.files.get("d.npz") == "bomb":
        case.files["d.npz"] = bomb()
    run_one(harness, case)
