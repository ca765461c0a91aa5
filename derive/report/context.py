"""The contexts of the reports: what each kind of report shows, as plain dicts and lists.

Text in a context is either `Tex` (formulas from SymPy's printer, labels, numbers)
or a plain string from a user, which the templates escape. Labels come from
reports/labels/LANG.toml (derive/report/labels.py); English messages other
modules write are shown in the report's language where the label files have them.
The context is documented in reports/README.md.
"""

from __future__ import annotations

import datetime as _dt
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable, Mapping

import mpmath
import sympy as sp

from derive import __version__
from derive.derivation import Derivations
from derive.report.drawing import draw
from derive.errors import InputError
from derive.graph.network import Network
from derive.report.format import MathWriter, breakable, exact_text, number
from derive.report.labels import LANGS, Labels
from derive.texsafe import Tex, math_or_text

MAX_LISTED = 150  # gradients, δs or claims listed in full before the rest is summarised
MAX_PATHS = 16  # chain-rule paths written out by --explain; beyond, node by node
MAX_POINT = 24  # counterexample coordinates shown
FD_LIMIT = 200  # parameters whose finite-difference check a values table shows
FD_STEP = Fraction(1, 10**20)
FD_DIGITS = 60


def display_source(source: str | None) -> str:
    """Where a network came from, as its reader knows it: a built-in's name, or the path given."""
    if not source:
        return ""
    from derive.graph.spec import networks_dir

    path = Path(source)
    try:
        if path.resolve().parent == networks_dir().resolve():
            return f"built-in: {path.stem}"
    except OSError:
        pass
    return source


def base_context(lang: str, title: str, subtitle: str = "", source: str = "") -> dict:
    if lang not in LANGS:
        raise InputError(f"--lang must be one of {', '.join(LANGS)}")
    t = Labels(lang)
    return {
        "lang": lang,
        "t": t,
        "title": title,
        "subtitle": subtitle,
        "source": t.message(source),
        "generated": t("generated", version=__version__, date=_dt.date.today().isoformat()),
        "version": __version__,
    }


def network_section(network: Network, math: MathWriter, t: Labels) -> dict:
    """The network as declared: counts, equations (one per family for large ones), layers, drawing."""
    equations = []
    if network.kind in ("layered", "cnn"):
        family_of = {s: name for name, members in network.families.items() for s in members.values()}
        by_family: dict[str, dict] = {}
        for node in network.order:
            family = family_of.get(node, node.name)
            if family in by_family:
                by_family[family]["more"] += 1
            else:
                by_family[family] = {"lhs": math(node), "rhs": math.lines(network.definitions[node]), "more": 0}
        equations = list(by_family.values())
        for eq in equations:
            eq["more_text"] = t("and_more", count=eq["more"]) if eq["more"] else ""
    else:
        for node in network.order:
            equations.append({"lhs": math(node), "rhs": math.lines(network.definitions[node]), "more": 0,
                              "more_text": ""})
    layers = []
    facts = network.facts
    if network.kind == "layered":
        for l, (size, act) in enumerate(zip(facts["sizes"], ("input", *facts["activations"])), start=1):
            kind = "input" if l == 1 else "dense"
            layers.append({"index": l, "kind": kind, "kind_text": t.name("layer_kind", kind), "units": size,
                           "activation": "" if l == 1 else act, "shape": str(size), "details": ""})
    elif network.kind == "cnn":
        c, h, w = facts["input_shape"]
        layers.append({"index": 1, "kind": "input", "kind_text": t.name("layer_kind", "input"), "units": c * h * w,
                       "activation": "", "shape": f"{c}×{h}×{w}", "details": ""})
        for i, step in enumerate(facts["plan"], start=2):
            kind = step["kind"]
            if kind == "conv":
                kr, kc = step["kernel"]
                pad = step["padding"]
                details = t.name("layer_details", "conv", filters=step["filters"], size=f"{kr}×{kc}",
                                 stride=step["stride"], padding=f"{pad[0]},{pad[1]}")
                shape = "×".join(str(n) for n in step["out_shape"])
            elif kind == "pool":
                pr, pc = step["size"]
                details = t.name("layer_details", "pool", pool=t.name("pool", step["pool"]), size=f"{pr}×{pc}",
                                 stride=step["stride"])
                shape = "×".join(str(n) for n in step["out_shape"])
            else:
                details, shape = "", str(step.get("units", ""))
            layers.append({"index": i, "kind": kind, "kind_text": t.name("layer_kind", kind),
                           "units": step.get("units", ""),
                           "activation": _activation_of(network, step.get("label", "")) if kind != "pool" else "",
                           "shape": shape, "details": details})
    counts = {
        "inputs": len(network.inputs),
        "targets": len(network.targets),
        "parameters": len(network.parameters),
        "nodes": len(network.order),
        "constants": len(network.constants),
    }
    return {
        "name": network.name,
        "kind": network.kind,
        "description": network.description,
        "cost": math(network.cost),
        "counts": counts,
        "equations": equations,
        "layers": layers,
        "drawing": draw(network, math),
    }


def _activation_of(network: Network, label: str) -> str:
    """The activation a CNN layer applies, read off its first unit's equation (a = σ(z))."""
    members = network.families.get(f"a{label}")
    if not members:
        return ""
    definition = network.definitions.get(next(iter(members.values())))
    if definition is None:
        return ""
    if isinstance(definition, sp.Function):
        return type(definition).__name__
    return "identity" if definition.is_Symbol else ""


def derivation_section(network: Network, derivations: Derivations, math: MathWriter) -> dict:
    d = derivations.cost
    d.derive_all()
    nodes = list(reversed(d.nodes()))
    recurrences = [
        {"lhs": math(d.adjoint(n)), "rhs": math.lines(d.definition(n))} for n in nodes[:MAX_LISTED]
    ]
    gradients = []
    for p in d.parameters()[:MAX_LISTED]:
        closed = d.closed_form(p)
        closed_tex = math(closed)
        entry = {"lhs": math(d.adjoint(p)), "chain": math.lines(d.definition(p)), "closed": None, "closed_chars": 0}
        if len(closed_tex) <= 1500:
            entry["closed"] = math.lines(closed)
        else:
            entry["closed_chars"] = len(closed_tex)
        gradients.append(entry)
    return {
        "recurrences": recurrences,
        "recurrences_omitted": max(0, len(nodes) - MAX_LISTED),
        "gradients": gradients,
        "gradients_omitted": max(0, len(d.parameters()) - MAX_LISTED),
    }


def _evaluator(network: Network, derivations: Derivations):
    """Every symbol at the spec's [values] point in 60-digit arithmetic (None without [values])."""
    from derive.proof.numeric import ApproximateArithmetic, Evaluator

    if network.values is None:
        return None
    return Evaluator(ApproximateArithmetic(FD_DIGITS), network.values, derivations.definition)


def _at(evaluate, expr):
    """expr's value (an mpmath number), or None where it has none: no [values], a leaf without a
    number, or a point outside its domain."""
    from derive.proof.numeric import Indeterminate

    if evaluate is None:
        return None
    try:
        return evaluate(expr)
    except (KeyError, Indeterminate, ZeroDivisionError, TypeError, ValueError):
        return None


def explain_section(
    network: Network, derivations: Derivations, math: MathWriter, name: str, t: Labels, evaluate=None
) -> dict:
    """∂C/∂θ for one parameter (or node), path by path, each factor with its number."""
    target = network.by_name.get(name)
    d = derivations.cost
    if target is None or (target not in d.ancestors):
        known = ", ".join(p.name for p in network.parameters[:12])
        raise InputError(f"--explain: '{name}' is not a parameter or node the cost depends on (parameters: {known}, …)")
    paths = _paths(network, d, target, MAX_PATHS + 1)
    result = {
        "target": math(d.adjoint(target)),
        "target_name": name,
        "intro": t("explain_intro", target=Tex(f"${math(d.adjoint(target))}$")),
        "value": number(_at(evaluate, d.adjoint(target))),
        "closed": math.lines(d.closed_form(target)),
    }
    if len(paths) <= MAX_PATHS:
        rows = []
        for path in paths:
            factors = []
            product_value = 1
            for upper, lower in zip(path, path[1:]):
                partial = network.local_partials(upper)[lower]
                value = _at(evaluate, partial)
                product_value = None if value is None or product_value is None else product_value * value
                factors.append({
                    "symbol": Tex(rf"\frac{{\partial {math(upper)}}}{{\partial {math(lower)}}}"),
                    "expr": math(partial),
                    "value": number(value),
                })
            rows.append({"chain": Tex(r" \to ".join(math(s) for s in path)), "factors": factors,
                         "value": number(product_value)})
        result.update(mode="paths", paths=rows, path_count=len(paths))
    else:
        steps = []
        between = d._needed(target)  # the nodes on some path from the cost down to the target
        needed = [n for n in reversed(d.nodes()) if n in between and n != target]
        for n in [*needed, target]:
            steps.append({
                "lhs": math(d.adjoint(n)),
                "rhs": math.lines(d.definition(n)),
                "value": number(_at(evaluate, d.adjoint(n))),
            })
        count = _count_paths(network, d, target)
        result.update(mode="nodes", steps=steps, path_count=count, note=t("explain_nodes", paths=count))
    return result


def _paths(network: Network, d, start: sp.Symbol, limit: int) -> list[list[sp.Symbol]]:
    """Paths from the cost down to `start` (cost first), at most `limit` of them."""
    found: list[list[sp.Symbol]] = []
    stack = [[start]]
    while stack and len(found) < limit:
        path = stack.pop()
        head = path[-1]
        if head == d.of:
            found.append(list(reversed(path)))
            continue
        for user in reversed(network.consumers.get(head, ())):
            if user in d.ancestors:
                stack.append([*path, user])
    return found


def _count_paths(network: Network, d, start: sp.Symbol) -> int:
    counts: dict[sp.Symbol, int] = {d.of: 1}
    for node in reversed(network.order):
        if node == d.of or node not in d.ancestors:
            continue
        counts[node] = sum(counts.get(u, 0) for u in network.consumers.get(node, ()))
    if start in counts:
        return counts[start]
    return sum(counts.get(u, 0) for u in network.consumers.get(start, ()))  # a leaf: through the nodes it feeds


def proof_section(report, math: MathWriter, t: Labels) -> dict:
    sources = {s.id: s for s in report.sets}
    families = []
    for row in report.families():
        s = sources.get(row["set"])
        families.append({**row, "family_text": t.name("family_name", row["family"]),
                         "title": s.title if s else row["set"], "source": s.source if s else ""})
    refutations = []
    for r in report.results:
        if r.verdict.status == "proven":
            continue
        entry = {
            "label": f"{r.formula}[{', '.join(f'{k}={v}' for k, v in r.indices.items())}]" if r.indices else r.formula,
            "status": r.verdict.status,
            "lhs": math.lines(r.lhs),
            "rhs": math.lines(r.rhs),
            "method": r.verdict.method,
            "counterexample": counterexample_context(r.verdict.counterexample, t),
        }
        refutations.append(entry)
    summary = report.summary()
    assumptions = [t.message(a) for a in sorted({a for r in report.results for a in r.verdict.assumptions})]
    formulas = []
    seen = set()
    for s in report.sets:
        for f in s.formulas:
            if (s.id, f.family) in seen or not f.latex:
                continue
            seen.add((s.id, f.family))
            formulas.append({"set": s.id, "family": f.family, "family_text": t.name("family_name", f.family),
                             "latex": math_or_text(f.latex, name=False)})
    return {
        "families": families,
        "formulas": formulas,
        "refutations": refutations[:40],
        "refutations_omitted": max(0, len(refutations) - 40),
        "summary": summary,
        "seconds": f"{report.seconds:.2f}",
        "summary_text": t("proof_summary", seconds=f"{report.seconds:.2f}", **summary),
        "assumptions": assumptions,
        "sets": [{"id": s.id, "title": s.title, "source": s.source} for s in report.sets],
    }


def counterexample_context(cx, t: Labels, identity: bool = True) -> dict | None:
    """A counterexample's point and values; a claim's sides are the correct value and the claimed one."""
    if cx is None:
        return None
    point = [{"name": k, "value": exact_text(v)} for k, v in list(cx.point.items())[:MAX_POINT]]
    return {
        "point": point,
        "point_omitted": max(0, len(cx.point) - MAX_POINT),
        "functions": [{"name": k, "text": v} for k, v in cx.functions.items()],
        "lhs": breakable(cx.lhs),
        "rhs": breakable(cx.rhs),
        "lhs_label": t("lhs_value" if identity else "correct_value"),
        "rhs_label": t("rhs_value" if identity else "claimed_value"),
        "certified_by": t("certified_by", how=t.message(cx.certified_by)),
    }


def values_section(network: Network, derivations: Derivations, math: MathWriter, evaluate) -> dict | None:
    """Every node and gradient at the spec's [values] point, with a finite-difference check."""
    if evaluate is None:
        return None
    d = derivations.cost
    nodes = []
    for n in network.order:
        value = _at(evaluate, n)
        if value is not None:
            nodes.append({"name": math(n), "value": number(value)})
    gradients = []
    for p in d.parameters()[:FD_LIMIT]:
        value = _at(evaluate, d.adjoint(p))
        fd = _finite_difference(network, p)
        relative = None
        if value is not None and fd is not None:
            relative = abs(value - fd) / max(abs(value), abs(fd), mpmath.mpf(10) ** -300)
        gradients.append({"parameter": math(p), "name": math(d.adjoint(p)), "value": number(value),
                          "fd": number(fd), "relative": number(relative, 2)})
    if not nodes and not gradients:
        return None
    return {"nodes": nodes, "gradients": gradients, "loss": number(_at(evaluate, network.cost)),
            "omitted": max(0, len(d.parameters()) - FD_LIMIT)}


def _finite_difference(network: Network, parameter: sp.Symbol):
    """(C(θ + h) − C(θ − h)) / 2h at the [values] point, evaluated forward only in 60 digits."""
    from derive.proof.numeric import ApproximateArithmetic, Evaluator

    values = network.values or {}
    if parameter not in values:
        return None
    results = []
    for sign in (1, -1):
        point = dict(values)
        point[parameter] = values[parameter] + sign * FD_STEP
        value = _at(Evaluator(ApproximateArithmetic(FD_DIGITS), point, network.definitions.get), network.cost)
        if value is None:
            return None
        results.append(value)
    return (results[0] - results[1]) / 2 * FD_STEP.denominator / FD_STEP.numerator


def network_context(
    network: Network,
    *,
    lang: str = "en",
    explain: str | None = None,
    formulas: list | None = None,
    budget: float = 5.0,
    seed: int = 0,
    progress: Callable | None = None,
) -> dict:
    """Everything a network report shows: declaration, derivation, explanation, proofs, numbers.

    `formulas`: FormulaSet objects (default: every built-in set that applies).
    `progress(total)`: a progress bar for the proofs, as `derive prove` draws.
    """
    from derive.proof.formulas import builtin_sets
    from derive.proof.engine import prove

    context = base_context(lang, network.name, "", display_source(network.source))
    t = context["t"]
    derivations = Derivations(network)
    math = MathWriter(derivations)
    context["network"] = network_section(network, math, t)
    context["derivation"] = derivation_section(network, derivations, math)
    evaluate = _evaluator(network, derivations)  # one evaluator: each node is computed once for both sections
    context["explain"] = explain_section(network, derivations, math, explain, t, evaluate) if explain else None
    sets = [s for s in (builtin_sets().values() if formulas is None else formulas) if s.applicable(network)]
    report = prove(network, sets, derivations=derivations, budget=budget, seed=seed, progress=progress) if sets else None
    context["proofs"] = proof_section(report, math, t) if report is not None else None
    context["values"] = values_section(network, derivations, math, evaluate)
    context["assumptions"] = [t.message(a) for a in network.assumptions]
    return context


def claims_context(result, *, lang: str = "en") -> dict:
    """A graded claims file: the grading table, each refutation explained."""
    cf = result.claims_file
    context = base_context(lang, cf.title or Path(cf.path).name, cf.student, cf.path)
    t = context["t"]
    math = MathWriter(cf.derivations)
    context["network"] = network_section(cf.network, math, t)
    claims = []
    for r in result.results:
        claim = r.claim
        diagnosis = None
        if r.diagnosis:
            # an English report names the mistake by its id alone, as it always has
            title = t.name("diagnosis_title", r.diagnosis.id) if lang != "en" else ""
            diagnosis = {"id": r.diagnosis.id, "message": t.message(r.diagnosis.message), "title": title}
        claims.append({
            "name": claim.name,
            "kind": claim.kind,
            "verdict": r.verdict.status,
            "typed": breakable(claim.text),
            "syntax": claim.syntax,
            "lhs": math(claim.lhs),
            "rhs": math.lines(claim.rhs),
            "expected": math.lines(r.expected) if r.verdict.status != "proven" else [],
            "diagnosis": diagnosis,
            "method": r.verdict.method,
            "counterexample": counterexample_context(r.verdict.counterexample, t, claim.kind == "identity"),
            "expect": claim.expect,
            "expect_matched": r.expect_matched,
            "expect_text": t("expected_verdict", expect=t(claim.expect)) if claim.expect else "",
        })
    summary = result.summary()
    context["claims"] = {
        "file": cf.path,
        "title": cf.title,
        "student": cf.student,
        "network": cf.network.name,
        "list": claims,
        "summary": summary,
        "grade": result.grade,
        "passed": result.passed,
        "unparsed": [{"name": name, "message": message} for name, message in cf.errors],
        "assumptions": [t.message(a) for a in result.assumptions],
    }
    return context


def class_context(results, bad_files: Iterable[tuple[str, str]] = (), *, lang: str = "en") -> dict:
    t = Labels(lang)
    context = base_context(lang, t("class_summary"))
    rows = []
    for r in results:
        s = r.summary()
        rows.append({"file": r.claims_file.path, "student": r.claims_file.student, "proven": s["proven"],
                     "total": s["total"], "refuted": s["refuted"], "undecided": s["undecided"], "passed": r.passed})
    proven = sum(row["proven"] for row in rows)
    claims = sum(row["total"] for row in rows)
    context["class"] = {
        "rows": rows,
        "bad_files": [{"file": p, "error": e} for p, e in bad_files],
        "total_text": t("class_total", proven=proven, claims=claims, files=len(rows)),
        "proven": proven,
        "claims": claims,
    }
    return context


def training_context(result, settings: Mapping, *, lang: str = "en", seed: int = 0) -> dict:
    network = result.kernel.network
    context = base_context(lang, f"{network.name} · {result.dataset.name}", "", display_source(network.source))
    t = context["t"]
    derivations = Derivations(network)
    math = MathWriter(derivations)
    context["network"] = network_section(network, math, t)
    history = result.history
    step = max(1, len(history) // 400)  # pgfplots draws a few hundred points comfortably
    sampled = history[::step]
    if history and sampled[-1] is not history[-1]:
        sampled.append(history[-1])

    def series(key: str) -> list[tuple[int, float]]:
        return [(h["epoch"], float(h[key])) for h in sampled if key in h and h[key] == h[key]]

    context["training"] = {
        "data": result.dataset.name,
        "data_description": getattr(result.dataset, "description", ""),
        "epochs": result.epochs,
        "batch": settings.get("batch"),
        "lr": settings.get("lr"),
        "momentum": settings.get("momentum"),
        "seed": seed,
        "dtype": result.kernel.dtype.name,
        "kernel": result.kernel.backend,
        "seconds": f"{result.seconds:.2f}",
        "loss": number(result.loss, 6),
        "train_accuracy": None if result.train_accuracy is None else f"{100 * result.train_accuracy:.2f} %",
        "test_accuracy": None if result.test_accuracy is None else f"{100 * result.test_accuracy:.2f} %",
        "test_loss": None if result.test_loss is None else number(result.test_loss, 6),
        "loss_curve": series("loss"),
        "train_curve": [(e, 100 * a) for e, a in series("train_accuracy")],
        "test_curve": [(e, 100 * a) for e, a in series("test_accuracy")],
    }
    return context
