"""The contexts of the reports: what each kind of report shows, as plain dicts and lists.

Text in a context is either `Tex` (formulas from SymPy's printer, labels, numbers)
or a plain string from a user, which the templates escape. Labels come from
reports/labels/LANG.toml (derive/report/labels.py); English messages other
modules write are shown in the report's language where the label files have them.
The context is documented in reports/README.md.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Iterable, Mapping

import sympy as sp

from derive import __version__
from derive.derivation import Derivations
from derive.report.drawing import draw
from derive.errors import InputError
from derive.graph.network import Network
from derive.proof.general.report import GeneralReport
from derive.proof.report import ProofReport
from derive.proof.values import (
    MAX_PATHS,
    NetworkValues,
    chain_paths,
    count_chain_paths,
    explain_target,
    nodes_between,
)
from derive.report.format import MathWriter, breakable, exact_text, number
from derive.report.general import general_section
from derive.report.labels import LANGS, Labels
from derive.texsafe import Tex, is_safe_math, math_or_text

MAX_LISTED = 150  # gradients, δs or claims listed in full before the rest is summarised
MAX_POINT = 24  # counterexample coordinates shown


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
        layers += [layer.report_row(i, t) for i, layer in enumerate(facts["layers"], start=2)]
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


def _value(values: NetworkValues | None, expr: sp.Expr):
    """expr's number at the [values] point, or None (no [values], or no number there)."""
    return None if values is None else values.at(expr)


def explain_section(
    network: Network, derivations: Derivations, math: MathWriter, name: str, t: Labels,
    values: NetworkValues | None = None,
) -> dict:
    """∂C/∂θ for one parameter (or node), path by path, each factor with its number.

    `values`: from `network_values(…, explain=…)` for the same target (None: no numbers).
    """
    target = explain_target(network, derivations, name)
    d = derivations.cost
    paths = chain_paths(network, d, target, MAX_PATHS + 1)
    result = {
        "target": math(d.adjoint(target)),
        "target_name": name,
        "intro": t("explain_intro", target=Tex(f"${math(d.adjoint(target))}$")),
        "value": number(_value(values, d.adjoint(target))),
        "closed": math.lines(d.closed_form(target)),
    }
    if len(paths) <= MAX_PATHS:
        rows = []
        for path in paths:
            factors = []
            for upper, lower in zip(path, path[1:]):
                partial = network.local_partials(upper)[lower]
                factors.append({
                    "symbol": Tex(rf"\frac{{\partial {math(upper)}}}{{\partial {math(lower)}}}"),
                    "expr": math(partial),
                    "value": number(_value(values, partial)),
                })
            product = None if values is None else values.path_products.get(tuple(path))
            rows.append({"chain": Tex(r" \to ".join(math(s) for s in path)), "factors": factors,
                         "value": number(product)})
        result.update(mode="paths", paths=rows, path_count=len(paths))
    else:
        steps = []
        for n in [*nodes_between(d, target), target]:
            steps.append({
                "lhs": math(d.adjoint(n)),
                "rhs": math.lines(d.definition(n)),
                "value": number(_value(values, d.adjoint(n))),
            })
        count = count_chain_paths(network, d, target)
        result.update(mode="nodes", steps=steps, path_count=count, note=t("explain_nodes", paths=count))
    return result


def proof_section(report: ProofReport, math: MathWriter, t: Labels) -> dict:
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


def values_section(network: Network, derivations: Derivations, math: MathWriter,
                   values: NetworkValues | None) -> dict | None:
    """Every node and gradient at the spec's [values] point, with a finite-difference check."""
    if values is None:
        return None
    d = derivations.cost
    nodes = []
    for n in network.order:
        value = values.at(n)
        if value is not None:
            nodes.append({"name": math(n), "value": number(value)})
    gradients = [
        {"parameter": math(g.parameter), "name": math(d.adjoint(g.parameter)), "value": number(g.value),
         "fd": number(g.finite_difference), "relative": number(g.relative, 2)}
        for g in values.gradients
    ]
    if not nodes and not gradients:
        return None
    return {"nodes": nodes, "gradients": gradients, "loss": number(values.at(network.cost)),
            "omitted": values.gradients_omitted}


def network_context(
    network: Network,
    derivations: Derivations,
    *,
    proofs: ProofReport | None = None,
    values: NetworkValues | None = None,
    lang: str = "en",
    explain: str | None = None,
    general: GeneralReport | None = None,
) -> dict:
    """Everything a network report shows: declaration, derivation, explanation, proofs, numbers.

    The numbers are computed before: `proofs` by derive.proof.report.prove (None when no
    formula set applies), `values` by derive.proof.values.network_values (None without
    [values]; with `explain`, for that target), `general` by
    derive.proof.general.report.prove_general (None: no section "Proofs for every size").
    derive.report.render.network_report_context does all three.
    """
    context = base_context(lang, network.name, "", display_source(network.source))
    t = context["t"]
    math = MathWriter(derivations)
    context["network"] = network_section(network, math, t)
    context["derivation"] = derivation_section(network, derivations, math)
    context["explain"] = explain_section(network, derivations, math, explain, t, values) if explain else None
    context["proofs"] = proof_section(proofs, math, t) if proofs is not None else None
    context["general"] = general_section(general, t) if general is not None else None
    context["values"] = values_section(network, derivations, math, values)
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
            **typed_context(claim, math),
            "syntax": claim.syntax,
            "lhs": math(r.outcome.claim.lhs if r.outcome else claim.lhs),
            "rhs": math.lines(r.outcome.claim.rhs if r.outcome else claim.rhs),
            "expected": math.lines(delta_named(cf, r.expected))
            if r.verdict.status != "proven" and cf.show_correct and r.expected is not None else [],
            "diagnosis": diagnosis,
            "method": r.verdict.method,
            "counterexample": counterexample_context(r.verdict.counterexample, t, claim.kind == "identity"),
            "expect": claim.expect if cf.show_correct else None,
            "expect_matched": r.expect_matched if cf.show_correct else None,
            "expect_text": t("expected_verdict", expect=t(claim.expect)) if claim.expect and cf.show_correct else "",
            "parts": parts_context(r, t),
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
        "unparsed": [{"name": u.name, "message": u.message} for u in cf.unparsed],
        "assumptions": [t.message(a) for a in result.assumptions],
    }
    return context


def delta_named(cf, expr: sp.Expr) -> sp.Expr:
    """The neuron errors ∂C/∂z of a correct formula as δs (δ^F_{1,11}), as the text output writes them,
    in a convolutional network too (the report's printer names a layered network's only)."""
    from derive.graph.naming import delta_latex, delta_names

    derivations, network = cf.derivations, cf.network
    deltas = delta_names(network) if network.kind in ("layered", "cnn") else {}
    names = {}
    for s in expr.free_symbols:
        info = derivations.adjoint_info(s)
        if info is not None and info[0] is derivations.cost and info[1] in deltas:
            latex = delta_latex(network, info[1])
            if latex:
                names[s] = sp.Symbol(latex, real=True)  # a name with braces prints as it is
    return expr.xreplace(names) if names else expr


def typed_context(claim, math: MathWriter) -> dict:
    """The claim as its author wrote it, never as parsed (folding shows `beta1 = w11*b1 + w21*b2 - theta1`
    as β1 ?= β1): `typed_math`, the LaTeX typed, when it is LaTeX the report can typeset safely, else ""
    (the template prints `typed`, escaped); `claimed_head`, `∂C/∂w ?=` for a gradient or an update."""
    typed_math = Tex(claim.text) if claim.syntax == "latex" and is_safe_math(claim.text, name=False) else ""
    head = ""
    if claim.kind != "identity" and (claim.generic is None or not claim.generic.letters):
        head = Tex(math(claim.target) + r" \overset{?}{=}")
    return {"typed_math": typed_math, "claimed_head": head}


def parts_context(r, t) -> str:
    """A claim of several instances or links: how many, and the instance and link its verdict is about."""
    from derive.claims.parts_output import false_link

    claim = r.claim
    if claim.generic is None:
        return ""
    generic, outcome = claim.generic, r.outcome
    texts = [t("claim_instances", count=generic.instances, links=generic.links)]
    if outcome is not None and outcome.instance:
        shown = ", ".join(f"{k}={v}" for k, v in outcome.instance.items())
        texts.append(t("claim_instance", instance=shown))
    if false_link(claim, outcome):
        texts.append(t("claim_false_link", link=outcome.link, links=generic.links))
    return Tex(" ".join(texts))


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


def loss_axis(values: list[float]) -> dict:
    """A log axis where the loss spans a factor of 10 or more; otherwise a linear one with room around the
    values (pgfplots stops with "Dimension too large" on a log axis over a range as small as 1.957-1.966)."""
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if low > 0 and high / low >= 10:
        return {"mode": "log"}
    pad = max((high - low) * 0.1, abs(high) * 1e-3, 1e-6)
    return {"mode": "normal", "min": low - pad, "max": high + pad}


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
        "loss_axis": loss_axis([v for _, v in series("loss")]),
        "train_curve": [(e, 100 * a) for e, a in series("train_accuracy")],
        "test_curve": [(e, 100 * a) for e, a in series("test_accuracy")],
    }
    return context
