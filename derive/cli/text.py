"""Everything the command line writes as text or LaTeX: each a function of a result, returning a string."""

from __future__ import annotations

from derive.claims.parts_output import count_text, false_link, instance_text


def list_text(networks: list[dict], sets: list[dict], data: list[dict]) -> str:
    lines = ["Built-in networks (use the name wherever a SPEC is asked for):"]
    for n in networks:
        lines.append(f"  {n['name']:<24} {n['kind']:<10} {n['parameters']:>4} parameters  {n['description']}")
    lines.append("\nFormula sets (derive prove SPEC --formulas ID):")
    for s in sets:
        lines.append(f"  {s['id']:<24} {len(s['formulas']):>2} formulas  {s['title']}")
        lines.append(f"  {'':<24} source: {s['source']}")
    lines.append("\nData sets (derive train SPEC --data NAME):")
    for d in data:
        lines.append(f"  {d['name']:<24} {d['description']}")
    return "\n".join(lines)


def derive_text(derived, progress=iter) -> str:
    network, d = derived.network, derived.derivation
    values = derived.values() or {}
    cost = network.cost.name

    def shown(s) -> str:
        return f"   = {values[s]:.10g}" if s in values else ""

    backward = list(reversed(derived.nodes))
    lines = [
        f"{network.name}: derivatives of {cost} with respect to {len(derived.parameters)} parameters "
        f"through {len(backward)} intermediate nodes; D({cost}, v) means ∂{cost}/∂v",
        "",
        "Recurrences (each node's derivative from the nodes it feeds, nearest the cost first):",
    ]
    recurrences, closed = [], []
    text = derived.derivations.text  # str(), with shared sums printed once
    for n in progress(backward):
        recurrences.append(f"  {d.adjoint(n)} = {text(d.definition(n))}")
        closed.append(f"  {d.adjoint(n)} = {text(d.closed_form(n))}{shown(d.adjoint(n))}")
    lines += recurrences
    lines += ["", "Node derivatives in closed form:"]
    lines += closed
    lines += ["", "Gradients:"]
    for p in progress(derived.parameters):
        head = f"  {d.adjoint(p)} = "
        lines.append(f"{head}{text(d.definition(p))}")
        lines.append(f"{'':<{len(head) - 2}}= {text(d.closed_form(p))}{shown(d.adjoint(p))}")
    if network.cost in values:
        lines += ["", f"Loss at [values]: {cost} = {values[network.cost]:.10g}"]
    lines += [f"assuming: {a}" for a in network.assumptions]
    return "\n".join(lines)


def derive_latex(derived, progress=iter) -> str:
    d, latex = derived.derivation, derived.derivations.latex
    lines = [r"\begin{align*}"]
    for n in progress(list(reversed(derived.nodes))):
        lines.append(rf"  {latex(d.adjoint(n))} &= {latex(d.definition(n))} \\")
    for p in progress(derived.parameters):
        lines.append(rf"  {latex(d.adjoint(p))} &= {latex(d.definition(p))} = {latex(d.closed_form(p))} \\")
    lines[-1] = lines[-1].removesuffix(r" \\")
    lines.append(r"\end{align*}")
    return "\n".join(lines)


def prove_text(report) -> str:
    network = report.network
    summary = report.summary()
    set_names = ", ".join(s.id for s in report.sets)
    lines = [f"{network.name}: {summary['total']} instances from {set_names}"]
    set_width = max((len(r["set"]) for r in report.families()), default=4)
    width = max((len(f"{r['set']:<{set_width}}  {r['family']}") for r in report.families()), default=10)
    for row in report.families():
        label = f"{row['set']:<{set_width}}  {row['family']}"
        status = f"proven {row['proven']}/{row['total']}"
        if row["refuted"]:
            status += f", refuted {row['refuted']}"
        if row["undecided"]:
            status += f", undecided {row['undecided']}"
        lines.append(f"  {label:<{width}}  {status}")
    failures = [r for r in report.results if r.verdict.status != "proven"]
    for r in failures[:20]:
        v = r.verdict
        indices = ", ".join(f"{k}={i}" for k, i in r.indices.items())
        lines.append("")
        shown = [str(side) for side in (r.lhs, r.rhs)]  # a side from wide sums: its start, the rest in --json
        shown = [s if len(s) <= 400 else f"{s[:400]} … ({len(s):,} characters, see --json)" for s in shown]
        lines.append(f"{v.status.upper()}: {r.formula}[{indices}]  {shown[0]} = {shown[1]}")
        if v.counterexample:
            cx = v.counterexample
            point = ", ".join(f"{k}={x}" for k, x in list(cx.point.items())[:12])
            more = f", … ({len(cx.point) - 12} more in --json)" if len(cx.point) > 12 else ""
            lines.append(f"  counterexample ({cx.certified_by}): {point}{more}")
            for name, text in cx.functions.items():
                lines.append(f"  with {name} = {text}")
            lines.append(f"  lhs = {cx.lhs}, rhs = {cx.rhs}")
        else:
            lines.append(f"  {v.method}")
    if len(failures) > 20:
        lines.append(f"… and {len(failures) - 20} more (see --json)")
    assumptions = sorted({a for r in report.results for a in r.verdict.assumptions})
    for a in assumptions:
        lines.append(f"assuming: {a}")
    lines.append(
        f"{summary['proven']} proven, {summary['refuted']} refuted, {summary['undecided']} undecided "
        f"in {report.seconds:.2f} s"
    )
    return "\n".join(lines)


def general_text(report) -> str:
    """Each formula's argument for every size, step by step; the inductions; the summary."""
    from derive.proof.general.show import text

    lines = ["General proofs: every width, every depth of a layered network, every d-q-l of Zhou's network"]
    current = None
    for entry in report.entries:
        result = entry.result
        if entry.set_id != current:
            current = entry.set_id
            lines += ["", f"{entry.set_id}"]
        mark = {"proven": "✓ proven for every size", "unproven": "? not proven in general",
                "not-covered": "· not covered"}[result.status]
        lines.append(f"  {entry.formula.id}  {mark} ({result.seconds:.2f} s)")
        if result.status == "not-covered":
            lines.append(f"      {result.reason}")
            continue
        for assumption in result.assumptions:
            lines.append(f"      assuming {assumption}")
        for side, steps in (("left ", result.lhs_steps), ("right", result.rhs_steps)):
            for number, step in enumerate(steps):
                head = f"      {side}  " if number == 0 else "             = "
                lines.append(f"{head}{text(step.expr)}")
                if number:
                    lines.append(f"                 ({step.text})")
        if result.proven:
            lines.append("      left − right = 0 in the canonical form (sums distributed, deltas contracted, "
                         "indices renamed)")
        else:
            lines.append(f"      {result.reason}: {text(result.difference) if result.difference is not None else ''}")
    for induction in report.inductions:
        lines += ["", f"{induction.set_id}: {induction.text}"]
    lines += ["", f"{report.count('proven')} proven for every size, {report.count('unproven')} not proven in "
                  f"general, {report.count('not-covered')} not covered by a general model, in {report.seconds:.2f} s"]
    return "\n".join(lines)


GENERAL_MARK = {"proven": "proven", "refuted": "refuted", "undecided": "undecided", "not-read": "not read"}


def general_lines(r) -> list[str]:
    """With --general, a matrix claim's verdict for every size: the smallest network where it fails."""
    general = r.general
    if general is None or general["status"] == "proven":
        return []
    lines = ["", f"{r.claim.name}, for every size: {general['status']}", f"  {general['method']}"]
    if general.get("diagnosis"):
        lines.append(f"  diagnosis on the {general['network']} network: {general['diagnosis']}")
    cx = general.get("counterexample")
    if cx:
        point = ", ".join(f"{k}={v}" for k, v in list(cx.get("point", {}).items())[:12])
        lines.append(f"  counterexample on the {general['network']} network: {point}")
        lines += [f"    with {name} = {text}" for name, text in cx.get("functions", {}).items()]
        lines.append(f"  lhs = {cx.get('lhs')}, rhs = {cx.get('rhs')}")
    elif general.get("detail"):
        lines.append(f"  {general['detail']}")
    return lines


VERDICT_MARK = {"proven": "✓ proven", "refuted": "✗ refuted", "undecided": "? undecided", "unparsed": "! unparsed"}


def check_text(result) -> str:
    cf = result.claims_file
    header = f"{cf.path}: {len(result.results) + len(result.unparsed)} claims on {cf.network.name}"
    if cf.student:
        header += f" ({cf.student})"
    rows = [("claim", "verdict", "diagnosis")]
    for r in result.in_file_order():
        if not hasattr(r, "verdict"):  # an Unparsed claim
            rows.append((r.name, VERDICT_MARK["unparsed"], "-"))
            continue
        verdict = VERDICT_MARK[r.verdict.status]
        if r.claim.generic is not None and count_text(r.claim):
            verdict += f" {count_text(r.claim)}"
        if r.claim.expect is not None and not r.expect_matched and cf.show_correct:
            if r.claim.expect == r.verdict.status and r.claim.expect_diagnosis is not None:
                verdict += f"  (expected diagnosis {r.claim.expect_diagnosis}!)"
            else:
                verdict += f"  (expected {r.claim.expect}!)"
        if r.general is not None:
            verdict += f"; every size: {GENERAL_MARK[r.general['status']]}"
        rows.append((r.claim.name, verdict, r.diagnosis.id if r.diagnosis else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [header]
    for i, row in enumerate(rows):
        lines.append("  " + "  ".join(cell.ljust(widths[k]) for k, cell in enumerate(row)).rstrip())
        if i == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    for r in result.in_file_order():
        if not hasattr(r, "verdict"):
            lines += ["", f"{r.name}: unparsed", f"  claimed:  {r.text}", f"  why:      {r.message}"]
            continue
        lines += general_lines(r)
        if r.verdict.status == "proven":
            continue
        lines.append("")
        lines.append(f"{r.claim.name}: {r.verdict.status}")
        lines.append(f"  claimed:  {r.claim.text}")
        if r.claim.generic is not None:
            lines.extend(f"  {line}" for line in (instance_text(r.claim, r.outcome), false_link(r.claim, r.outcome))
                         if line)
        if cf.show_correct and r.expected is not None:
            lines.append(f"  correct:  {r.expected_latex if r.claim.syntax == 'latex' else r.expected_text}")
        if r.diagnosis:
            lines.append(f"  mistake:  {r.diagnosis.message}")
        cx = r.verdict.counterexample
        if cx:
            point = ", ".join(f"{k}={v}" for k, v in list(cx.point.items())[:12])
            more = f", … ({len(cx.point) - 12} more in --json)" if len(cx.point) > 12 else ""
            lines.append(f"  counterexample ({cx.certified_by}): {point}{more}")
            for name, text in cx.functions.items():
                lines.append(f"    with {name} = {text}")
            targets = [t.name for t in cf.network.targets if t.name in cx.point]
            if r.diagnosis and r.diagnosis.id == "one-hot" and targets:
                from fractions import Fraction

                total = sum((Fraction(cx.point[t]) for t in targets), Fraction(0))
                shown = ", ".join(f"{t}={cx.point[t]}" for t in targets)
                lines.append(f"    there {shown}: the targets sum to {total}, not 1")
            if r.claim.kind == "identity":
                lines.append(f"    lhs = {cx.lhs}, rhs = {cx.rhs}")
            else:
                lines.append(f"    the correct value is {cx.lhs}, the claim gives {cx.rhs}")
        elif r.verdict.status == "undecided":
            lines.append(f"  {r.verdict.method}")
    summary = result.summary()
    grade = result.grade
    if summary["expect_mismatches"] and cf.show_correct:
        grade += f"; {summary['expect_mismatches']} verdict(s) differ from the file's expect"
    lines.append("")
    lines.extend(f"assuming: {assumption}" for assumption in result.assumptions)
    lines.append(grade)
    return "\n".join(lines)


def class_table(results, bad_files) -> str:
    rows = [("file", "proven", "refuted", "undecided", "passed")]
    for r in results:
        s = r.summary()
        rows.append((r.claims_file.path, f"{s['proven']}/{s['total']}", str(s["refuted"]), str(s["undecided"]),
                     "yes" if r.passed else "no"))
    for path, _ in bad_files:
        rows.append((path, "-", "-", "-", "bad file"))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["Class summary:"]
    for i, row in enumerate(rows):
        lines.append("  " + "  ".join(cell.ljust(widths[k]) for k, cell in enumerate(row)).rstrip())
        if i == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    s = class_summary(results)
    lines.append(f"{s['proven']}/{s['claims']} claims proven in {s['files']} files")
    return "\n".join(lines)


def class_summary(results) -> dict:
    total = sum(r.summary()["total"] for r in results)
    proven = sum(r.summary()["proven"] for r in results)
    return {"files": len(results), "claims": total, "proven": proven, "passed_files": sum(r.passed for r in results)}


def train_text(result, settings, show_parameters: bool) -> str:
    lines = [
        f"{result.kernel.network.name} on {result.dataset.name}: {result.epochs} epochs, batch {settings['batch']}, "
        f"lr {settings['lr']:g}, momentum {settings['momentum']:g} ({result.kernel.backend} kernel, "
        f"{result.kernel.dtype.name}) in {result.seconds:.2f} s",
        f"  loss            {result.loss:.6g}",
    ]
    if result.train_accuracy is not None:
        lines.append(f"  train accuracy  {100 * result.train_accuracy:.2f} %")
    if result.test_accuracy is not None:
        lines.append(f"  test accuracy   {100 * result.test_accuracy:.2f} %")
    if show_parameters:
        lines.append("  parameters after training:")
        for s, v in result.kernel.to_values(result.params).items():
            lines.append(f"    {s.name} = {v:.9f}")
    return "\n".join(lines)


def report_line(outcome) -> str:
    if outcome.pdf_path is not None:
        pages = f", {outcome.pages} pages" if outcome.pages else ""
        return f"wrote {outcome.pdf_path} ({outcome.engine}{pages}) and {outcome.tex_path}"
    if outcome.ok:
        return f"wrote {outcome.tex_path}"
    return f"wrote {outcome.tex_path} only (no PDF)"
