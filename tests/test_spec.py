"""Spec files: the issue's free-form file as written, layered specs, and one-line errors for bad ones."""

import textwrap

import pytest

from derive import InputError, load, parse_spec
from derive.cli import main

ISSUE_EXAMPLE = textwrap.dedent(
    """\
    [network]
    name = "two-two-two"
    inputs = ["x1", "x2"]
    targets = ["y1", "y2"]
    parameters = ["w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "b1", "b2"]
    cost = "E"

    [equations]          # in order: a name is defined once, used only after it
    neth1 = "w1*x1 + w2*x2 + b1"
    neth2 = "w3*x1 + w4*x2 + b1"
    outh1 = "sigmoid(neth1)"
    outh2 = "sigmoid(neth2)"
    neto1 = "w5*outh1 + w6*outh2 + b2"
    neto2 = "w7*outh1 + w8*outh2 + b2"
    outo1 = "sigmoid(neto1)"
    outo2 = "sigmoid(neto2)"
    E = "(y1 - outo1)**2/2 + (y2 - outo2)**2/2"

    [values]             # optional: a numeric point, one value per input, target and parameter
    x1 = 0.05
    x2 = 0.10
    # ...
    """
)


def test_the_issue_example_is_accepted_as_written():
    network = parse_spec(ISSUE_EXAMPLE, where="two.toml")
    assert network.name == "two-two-two"
    assert [p.name for p in network.parameters] == ["w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "b1", "b2"]
    assert [n.name for n in network.order][-1] == "E"
    assert {s.name for s in network.missing_values} >= {"y1", "w1", "b2"}


def test_partial_values_evaluate_what_they_can(tmp_path, capsys):
    path = tmp_path / "two.toml"
    path.write_text(ISSUE_EXAMPLE)
    assert main(["derive", str(path), "--json"]) == 0
    captured = capsys.readouterr()
    assert "has no number for" in captured.err
    assert '"loss": null' in captured.out


def test_parameters_default_to_every_other_name():
    spec = ISSUE_EXAMPLE.replace(
        'parameters = ["w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "b1", "b2"]\n', ""
    )
    network = parse_spec(spec)
    assert [p.name for p in network.parameters] == ["w1", "w2", "b1", "w3", "w4", "w5", "w6", "b2", "w7", "w8"]


def test_layered_names_follow_nielsen():
    network = parse_spec('[network]\nlayers = [3, 2]\nactivation = "tanh"\ncost = "cross_entropy"\n')
    names = network.by_name
    assert "w2_1_3" in names and "b2_2" in names and "z2_1" in names and "a2_2" in names
    assert names["a1_3"] == names["x3"]  # a^1 is the input
    assert network.latex_names[names["w2_1_3"]] == "w^{2}_{13}"
    assert network.definitions[names["z2_1"]] == (
        names["w2_1_1"] * names["x1"] + names["w2_1_2"] * names["x2"] + names["w2_1_3"] * names["x3"] + names["b2_1"]
    )


BAD = [
    # (mutation of the issue example, fragment of the one-line error)
    (('neth1 = "w1*x1 + w2*x2 + b1"', 'neth1 = "w1*x1 + * x2"'), "two.toml: [equations] neth1, column 9: expected a name"),
    (('neto2 = "w7*outh1', 'neto2 = "w9*outh1'), "two.toml: [equations] neto2, column 1: unknown name 'w9' (not an input, target, parameter, constant or earlier equation)"),
    (('neth1 = "w1*x1 + w2*x2 + b1"', 'neth1 = "w1*x1 + w2*outh1 + b1"'), "[equations] neth1, column 12: cycle: neth1 → outh1 → neth1"),
    (('neth2 = "w3*x1 + w4*x2 + b1"', 'neth2 = "w3*x1 + w4*outo1 + b1"'), "[equations] neth2, column 12: cycle: neth2 → outo1 → neto1 → outh2 → neth2"),
    (('neto1 = "w5*outh1 + w6*outh2 + b2"', 'neto1 = "w5*outh1 + w6*outo2 + b2"'), "[equations] neto1, column 15: 'outo2' is used before its equation"),
    (('E = "(y1', 'E = "E + (y1'), "[equations] E, column 1: 'E' refers to itself (a cycle)"),
    (('outh2 = "sigmoid(neth2)"', 'outh1 = "sigmoid(neth2)"'), "two.toml: [equations] outh1: given twice (lines 11 and 12)"),
    (('cost = "E"', 'cost = "E"\ncost = "F"'), "two.toml: [network] cost: given twice (lines 6 and 7)"),
    (("x2 = 0.10", "x2 = 0.10\nx1 = 1"), "two.toml: [values] x1: given twice"),
    (('targets = ["y1", "y2"]', 'targets = ["y1", "x1"]'), "'x1' is declared twice"),
    (('"b1", "b2"]', '"b1", "b2", "w9"]'), "[network] parameters: parameter 'w9' is declared but the cost 'E' does not depend on it"),
    (('cost = "E"', 'cost = "F"'), "[network] cost: the cost 'F' is not one of the equations"),
    (("x2 = 0.10", 'x2 = "abc"'), "[values] x2, column 1: unknown name 'abc'"),
    (("x2 = 0.10", "q = 1"), "[values] q: 'q' is not an input"),
    (('name = "two-two-two"', 'name = "two-two-two"\nlayer = [2]'), "unknown key 'layer'"),
    (('outh1 = "sigmoid(neth1)"', 'outh1 = "sigmoid(neth1, neth2)"'), "[equations] outh1, column 1: sigmoid(): sigmoid() takes 1 argument"),
    (('outh1 = "sigmoid(neth1)"', 'outh1 = "__import__(neth1)"'), "unknown function '__import__'"),
    (('outh1 = "sigmoid(neth1)"', "outh1 = 3"), "[equations] outh1: must be a formula string"),
]


@pytest.mark.parametrize("change, message", BAD, ids=[m for _, m in BAD])
def test_bad_specs_get_one_line_errors_with_exit_code_2(change, message, tmp_path, capsys):
    old, new = change
    assert old in ISSUE_EXAMPLE
    path = tmp_path / "two.toml"
    path.write_text(ISSUE_EXAMPLE.replace(old, new, 1))
    with pytest.raises(InputError) as info:
        load(path)
    assert message.replace("two.toml", str(path)) in str(info.value)
    assert main(["derive", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("derive: error:") and "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    "spec, message",
    [
        ("[network]\nlayers = [3]\n", "[network] layers: must be a list of at least two"),
        ('[network]\nlayers = [3, "x"]\n', "[network] layers"),
        ('[network]\nlayers = [3, 2]\nactivation = "swish"\n', "unknown activation 'swish'"),
        ('[network]\nlayers = [3, 2, 2]\nactivation = ["softmax", "sigmoid"]\n', "softmax is allowed on the last layer only"),
        ('[network]\nlayers = [3, 2]\ncost = "log_likelihood"\n', "log_likelihood needs a softmax output layer"),
        ('[network]\nlayers = [3, 2]\nactivation = 3\n', "[network] activation: must be a name"),
        ("[network]\nname = 'x'\n", "needs 'layers'"),
        ("not toml at all", "TOML syntax error"),
        ("[network]\nlayers = [3, 2]\n[bogus]\n", "unknown table 'bogus'"),
    ],
)
def test_bad_layered_specs(spec, message, tmp_path):
    path = tmp_path / "net.toml"
    path.write_text(spec)
    with pytest.raises(InputError) as info:
        load(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_a_key_given_twice_on_the_last_line_is_named(tmp_path):
    path = tmp_path / "net.toml"
    path.write_text("[network]\nlayers = [3, 2]\n'layers' = [2, 2]")  # no newline: tomllib says "at end of document"
    with pytest.raises(InputError) as info:
        load(path)
    assert f"{path}: [network] layers: given twice (lines 2 and 3)" in str(info.value)


def test_unknown_spec_name_lists_the_builtins():
    with pytest.raises(InputError) as info:
        load("no-such-network")
    assert "two-two-two" in str(info.value)
