"""The command line: output shapes, --json, exit codes, streams."""

import json
import subprocess
import sys

import pytest

from derive import load
from derive.cli import main

from conftest import DATA


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_prove_prints_one_line_per_family_and_exits_0(capsys):
    code, out, err = run(capsys, "prove", "book-12-3-2")
    assert code == 0
    assert "nielsen  BP2" in out and "proven 3/3" in out
    assert "book-fc  weight gradient" in out and "proven 42/42" in out
    assert out.strip().splitlines()[-1].startswith("106 proven, 0 refuted, 0 undecided")


def test_prove_json_has_one_entry_per_instance(capsys):
    code, out, _ = run(capsys, "prove", "generic-2-3-2", "--formulas", "nielsen", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["network"] == "generic-2-3-2"
    assert data["summary"] == {"proven": 22, "refuted": 0, "undecided": 0, "total": 22}
    entry = data["results"][0]
    for key in ("formula", "indices", "lhs", "rhs", "verdict", "counterexample", "seconds"):
        assert key in entry
    bp4 = [r for r in data["results"] if r["formula"] == "BP4"]
    assert len(bp4) == 2 * 3 + 3 * 2
    assert {"l": 2, "j": 1, "k": 2} in [r["indices"] for r in bp4]


def test_refuted_formulas_exit_1_with_counterexamples(capsys):
    code, out, _ = run(capsys, "prove", "generic-3-4-4-2", "--formulas", str(DATA / "planted.toml"))
    assert code == 1
    assert "REFUTED: BP2-no-sigma-prime[l=2, j=1]" in out
    assert "counterexample (exact rational arithmetic)" in out
    assert "with sigma(t) = t**2/7 + t/2 + 1/3" in out


def test_refuted_json_carries_the_counterexample(capsys):
    code, out, _ = run(capsys, "prove", "book-12-3-2", "--formulas", str(DATA / "planted.toml"), "--json")
    assert code == 1
    data = json.loads(out)
    refuted = [r for r in data["results"] if r["verdict"] == "refuted"]
    assert refuted and all(r["counterexample"]["point"] for r in refuted)
    assert data["summary"]["refuted"] == len(refuted)


def test_derive_json_shape_and_values(capsys):
    code, out, _ = run(capsys, "derive", "two-two-two", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["network"] == "two-two-two"
    assert set(data["gradients"]) == {"w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "b1", "b2"}
    w5 = data["gradients"]["w5"]
    assert w5["expr"] == "outh1*outo1*(1 - outo1)*(outo1 - y1)"
    assert w5["chain"] == "D(E, neto1)*outh1"
    assert abs(w5["value"] - 0.082167041) < 1e-9
    assert "out_{h1}" in w5["latex"]
    assert set(data["errors"]) == {"neth1", "neth2", "outh1", "outh2", "neto1", "neto2", "outo1", "outo2"}
    assert data["recurrences"]["outh1"]["expr"] == "D(E, neto1)*w5 + D(E, neto2)*w7"
    assert abs(data["loss"] - 0.298371109) < 1e-9
    # a recurrence is ∂E/∂node written through the next δs: the same value as the node's error
    for name, recurrence in data["recurrences"].items():
        assert recurrence["value"] == data["errors"][name]["value"]


def test_derive_json_without_values_has_no_value(capsys):
    code, out, _ = run(capsys, "derive", "generic-2-3-2", "--json")
    data = json.loads(out)
    assert code == 0 and data["loss"] is None
    assert not any("value" in entry for table in ("gradients", "errors", "recurrences") for entry in data[table].values())


@pytest.mark.parametrize("form", ["--json", "--latex", None])
def test_derive_progress_bar_covers_the_writing_out(form, monkeypatch, capsys):
    import derive.cli as cli

    events = []

    class Recorder:
        def __init__(self, total, description):
            events.append(("total", total))

        def wrap(self, items):
            for item in items:
                yield item
                events.append("tick")

        def update(self, n=1):
            events.append("tick")

        def close(self):
            events.append("close")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

    monkeypatch.setattr(cli, "progress_bar", Recorder)
    code, out, _ = run(capsys, "derive", "generic-2-3-2", *([form] if form else []))
    assert code == 0 and out
    (_, total), *rest = events
    network = load("generic-2-3-2")
    nodes, parameters = len(network.order) - 1, len(network.parameters)  # every node but the cost
    derivation, writing = nodes + parameters + len(network.inputs), nodes + parameters
    assert rest[-1] == "close" and rest.count("tick") == derivation + writing <= total


def test_derive_text_and_latex(capsys):
    code, out, _ = run(capsys, "derive", "two-two-two")
    assert code == 0
    assert "D(E, outh1) = D(E, neto1)*w5 + D(E, neto2)*w7" in out
    assert "Loss at [values]: E = 0.2983711088" in out
    code, out, _ = run(capsys, "derive", "generic-2-3-2", "--latex")
    assert code == 0 and out.startswith(r"\begin{align*}") and r"\delta^{2}_{1}" in out


def test_list(capsys):
    code, out, _ = run(capsys, "list", "--json")
    data = json.loads(out)
    assert {n["name"] for n in data["networks"]} >= {"two-two-two", "book-12-3-2", "generic-3-4-4-2"}
    assert {s["id"] for s in data["formula_sets"]} >= {"nielsen", "book-fc"}
    assert all(s["source"] for s in data["formula_sets"])


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["prove", "no-such-net"], "no spec file 'no-such-net'"),
        (["prove", "two-two-two", "--formulas", "nielsen"], "no formula of nielsen applies"),
        (["prove", "book-12-3-2", "--formulas", "bogus"], "no formula set 'bogus'"),
        (["prove", "book-12-3-2", "--budget", "0"], "--budget must be a positive"),
        (["derive", "/nonexistent/x.toml"], "no such file"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, fragment, capsys):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert fragment in err and err.count("\n") == 1 and out == ""


def test_usage_errors_exit_2(capsys):
    code, _, err = run(capsys, "prove")  # in this process; `python -m derive` runs in the test below
    assert code == 2 and "usage:" in err


def test_help_teaches(capsys):
    code, out, _ = run(capsys, "prove", "--help")
    assert code == 0
    for word in ("proven", "refuted", "undecided", "examples:", "--formulas"):
        assert word in out


def test_json_stdout_is_clean_when_progress_is_drawn():
    result = subprocess.run(
        [sys.executable, "-m", "derive", "prove", "generic-2-3-2", "--json"], capture_output=True, text=True
    )
    assert result.returncode == 0
    json.loads(result.stdout)
