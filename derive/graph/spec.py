"""Spec files: a network declared in TOML, layered or free-form.

Layered:

    [network]
    name = "book-12-3-2"
    layers = [12, 3, 2]
    activation = "sigmoid"          # or one per layer after the input
    cost = "quadratic"              # quadratic | cross_entropy | log_likelihood | generic
    regularization = "l2"           # optional

Free-form (ordered equations; a name is defined once and used only after it):

    [network]
    name = "two-two-two"
    inputs = ["x1", "x2"]
    targets = ["y1", "y2"]
    parameters = [...]              # optional: else every other free name
    constants = [...]               # optional: fixed symbols such as a learning rate
    cost = "E"
    [equations]
    neth1 = "w1*x1 + w2*x2 + b1"
    ...
    [values]                        # optional: one number per input, target, parameter, constant
    [latex]                         # optional: how a name prints in LaTeX

Convolutional (深度学习的数学's names: wF_k_p_q, zF_k_i_j, aP_k_i_j, wO_n_k_i_j, …):

    [network]
    name = "book-cnn"
    input = [6, 6]                  # or [channels, height, width]
    cost = "quadratic"
    [[layer]]
    type = "conv"                   # filters, kernel, stride, padding, activation
    filters = 3
    kernel = 3
    [[layer]]
    type = "maxpool"                # or avgpool, l2pool; size, stride
    size = 2
    [[layer]]
    type = "dense"                  # units, activation
    units = 3

Zhou Zhihua's threshold network (机器学习, ch. 5), in his names:

    [network]
    zhou = [2, 2, 2]                # d inputs, q hidden units, l outputs

Errors name the file and the key: `two.toml: [equations] neth1, column 7: ...`.
"""

from __future__ import annotations

import dataclasses

from importlib import resources
from pathlib import Path
from typing import Mapping

from derive.errors import InputError
from derive.files import parse_toml, path_exists, read_text
from derive.limits import MAX_SPEC_BYTES, check_settings
from derive.graph.convolutional import convolutional
from derive.graph.free_form import free_form
from derive.graph.affine import affine
from derive.graph.batch import batch
from derive.graph.layered import layered
from derive.graph.modules import module_network
from derive.graph.network import Network
from derive.graph.stack import is_stack, stack_network
from derive.graph.zhou import zhou

LAYERED_KEYS = {"name", "description", "layers", "activation", "cost", "regularization", "batch"}
FREE_FORM_KEYS = {"name", "description", "inputs", "targets", "parameters", "constants", "cost"}
ZHOU_KEYS = {"name", "description", "zhou"}
CNN_KEYS = {"name", "description", "input", "cost"}
TOP_LEVEL = {"network", "equations", "values", "latex", "layer", "train"}
TRAIN_KEYS = {"epochs": int, "batch": int, "lr": float, "momentum": float}


def networks_dir() -> Path:
    return Path(str(resources.files("derive") / "networks"))


def builtin_names() -> list[str]:
    return sorted(p.stem for p in networks_dir().glob("*.toml"))


def load(spec: str | Path) -> Network:
    """A built-in network by name, or a spec file by path."""
    path = Path(spec)
    if path.suffix == ".toml" or "/" in str(spec) or path_exists(path):
        return load_file(path)
    builtin = networks_dir() / f"{spec}.toml"
    if builtin.name in {p.name for p in networks_dir().glob("*.toml")}:
        return load_file(builtin, label=str(spec))
    known = ", ".join(builtin_names())
    raise InputError(f"no spec file '{spec}' and no built-in network of that name (built-in: {known})")


def load_file(path: Path, label: str | None = None) -> Network:
    where = label or str(path)
    text = read_text(path, limit=MAX_SPEC_BYTES, where=where)
    return parse_spec(text, where=where, source=str(path))


def parse_spec(text: str, *, where: str = "<spec>", source: str | None = None) -> Network:
    data = parse_toml(text, where=where)
    try:
        network = from_dict(data, source=source)
        if "train" in data:  # the settings that train this network, under the command line's
            network = dataclasses.replace(network, facts={**network.facts, "train": _train_settings(data["train"])})
        return network
    except InputError as exc:
        raise exc.located(where) from None


def _train_settings(table) -> dict:
    if not isinstance(table, dict):
        raise InputError("must be a table of epochs, batch, lr, momentum", where="[train]")
    settings = {}
    for key, value in table.items():
        kind = TRAIN_KEYS.get(key)
        if kind is None:
            raise InputError(f"unknown key '{key}' (known: {', '.join(TRAIN_KEYS)})", where="[train]")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
            raise InputError(f"must be {'a whole number' if kind is int else 'a number'}", where=f"[train] {key}")
        settings[key] = kind(value)
    check_settings(**{"epochs": 1, "batch": 1, "lr": 1.0, "momentum": 0.0, **settings})
    return settings


def from_dict(data: Mapping, *, source: str | None = None) -> Network:
    unknown = set(data) - TOP_LEVEL
    if unknown:
        raise InputError(f"unknown table '{sorted(unknown)[0]}' (known: {', '.join(sorted(TOP_LEVEL))})")
    network = data.get("network")
    if not isinstance(network, dict):
        raise InputError("a [network] table is required")
    name = network.get("name", Path(source).stem if source else "network")
    if not isinstance(name, str) or not name:
        raise InputError("must be a non-empty string", where="[network] name")
    values = data.get("values")
    if values is not None and not isinstance(values, dict):
        raise InputError("must be a table of numbers", where="[values]")
    common = {"name": name, "values": values, "description": network.get("description", ""), "source": source}
    if "layer" in data and "batch" in network:  # one layer over a batch, any downstream loss
        _check_keys(network, {"name", "description", "batch", "input"}, "module")
        return module_network(network["batch"], network.get("input"), data["layer"], **common)
    if is_stack(data.get("layer")):  # layers over a mini-batch: batch norm, attention (derive.graph.stack)
        _check_keys(network, {"name", "description", "input"}, "stack")
        if "input" not in network:
            raise InputError("is required: the values per example, or [positions, features]", where="[network] input")
        return stack_network(network["input"], data["layer"], **common)
    if "input" in network or "layer" in data:
        return _convolutional_spec(data, network, common)
    if "zhou" in network:
        _check_keys(network, ZHOU_KEYS, "Zhou threshold")
        sizes = network["zhou"]
        if not (isinstance(sizes, list) and len(sizes) == 3):
            raise InputError("must be three layer sizes [d, q, l]", where="[network] zhou")
        return zhou(*sizes, **common)
    if "affine" in network:  # one affine layer, rows are examples (derive.graph.affine)
        _check_keys(network, {"name", "description", "affine"}, "affine")
        sizes = network["affine"]
        if not (isinstance(sizes, list) and len(sizes) == 3):
            raise InputError("must be three sizes [N, D, M]", where="[network] affine")
        return affine(*sizes, **common)
    if "layers" in network:
        return _layered_spec(data, network, common)
    if "equations" in data:
        return _free_form_spec(data, network, common)
    raise InputError(
        "[network] needs 'layers' (a layered network), 'input' with [[layer]] tables (convolutional), "
        "'zhou' (Zhou's threshold network), 'affine' (one affine layer) or an [equations] table (free-form)"
    )


def _convolutional_spec(data: Mapping, network: Mapping, common: dict) -> Network:
    _check_keys(network, CNN_KEYS, "convolutional")
    if "equations" in data or "layers" in network:
        raise InputError("a convolutional spec has 'input' and [[layer]] tables, not 'layers' or [equations]")
    if "input" not in network:
        raise InputError("is required: [height, width] or [channels, height, width]", where="[network] input")
    return convolutional(network["input"], data.get("layer", []), cost=network.get("cost", "quadratic"), **common)


def _layered_spec(data: Mapping, network: Mapping, common: dict) -> Network:
    if "equations" in data:
        raise InputError("a spec is either layered ('layers') or free-form ([equations]), not both")
    _check_keys(network, LAYERED_KEYS, "layered")
    if "latex" in data:
        raise InputError("a layered network's names are Nielsen's; [latex] is for free-form specs")
    if "batch" in network:  # a mini-batch in the deeplearning.ai course's names (derive.graph.batch)
        if network.get("regularization", "none") != "none":
            raise InputError("a batch network has no regularization yet", where="[network] regularization")
        return batch(_required(network, "layers"), network["batch"], activation=network.get("activation", "sigmoid"),
                     cost=network.get("cost", "cross_entropy"), **common)
    return layered(
        _required(network, "layers"),
        activation=network.get("activation", "sigmoid"),
        cost=network.get("cost", "quadratic"),
        regularization=network.get("regularization", "none"),
        **common,
    )


def _free_form_spec(data: Mapping, network: Mapping, common: dict) -> Network:
    _check_keys(network, FREE_FORM_KEYS, "free-form")
    equations = data["equations"]
    if not isinstance(equations, dict) or not equations:
        raise InputError("must be a table of name = \"formula\" lines", where="[equations]")
    for key, value in equations.items():
        if not isinstance(value, str):
            raise InputError("must be a formula string", where=f"[equations] {key}")
    cost = _required(network, "cost")
    if not isinstance(cost, str):
        raise InputError("must be the name of the cost's equation", where="[network] cost")
    latex = data.get("latex")
    if latex is not None and not (isinstance(latex, dict) and all(isinstance(v, str) for v in latex.values())):
        raise InputError("must be a table of name = \"LaTeX\"", where="[latex]")
    return free_form(
        equations,
        cost=cost,
        inputs=_list(network, "inputs"),
        targets=_list(network, "targets"),
        parameters=_list(network, "parameters") if "parameters" in network else None,
        constants=_list(network, "constants"),
        latex_names=latex,
        **common,
    )


def _check_keys(table: Mapping, allowed: set[str], kind: str) -> None:
    for key in table:
        if key not in allowed:
            raise InputError(
                f"unknown key '{key}' for a {kind} network (known: {', '.join(sorted(allowed))})",
                where="[network]",
            )


def _required(table: Mapping, key: str):
    if key not in table:
        raise InputError("is required", where=f"[network] {key}")
    return table[key]


def _list(table: Mapping, key: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError("must be a list of names, such as [\"x1\", \"x2\"]", where=f"[network] {key}")
    return value
