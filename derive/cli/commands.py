"""The commands of the `derive` command line: each reads its input, calls the library and prints.

Text comes from .text, JSON and progress bars from .streams; errors are raised
(InputError, DeriveError) for `main` to turn into a message and an exit code.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from derive.errors import InputError
from derive.cli import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK
from derive.cli.streams import emit_json
from derive.proof.sets import applicable_sets, formula_sets
from derive.cli.text import (
    check_text,
    class_summary,
    class_table,
    derive_latex,
    derive_text,
    general_text,
    list_text,
    prove_text,
    report_line,
    train_text,
)


def progress_bar(total: int, description: str):
    """derive.cli.progress_bar, looked up at each call, so that it can be replaced there (tests do)."""
    from derive.cli import progress_bar as bar

    return bar(total, description)


def run_list(args) -> int:
    from derive.proof.formulas import builtin_sets
    from derive.graph.spec import builtin_names, load

    networks = []
    for name in builtin_names():
        net = load(name)
        networks.append(
            {"name": name, "kind": net.kind, "parameters": len(net.parameters), "description": net.description}
        )
    sets = [
        {"id": s.id, "title": s.title, "source": s.source, "formulas": [f.id for f in s.formulas]}
        for s in builtin_sets().values()
    ]
    from derive.train.data import DESCRIPTIONS

    data = [{"name": name, "description": text} for name, text in DESCRIPTIONS.items()]
    if args.json:
        emit_json({"networks": networks, "formula_sets": sets, "data_sets": data})
    else:
        print(list_text(networks, sets, data))
    return EXIT_OK


def refuse_stack(network, command: str) -> None:
    """A stack network has no per-example symbolic graph: say what it has instead (exit 2)."""
    if network.kind == "stack":
        sets = ", ".join(network.facts["formula_sets"])
        raise InputError(
            f"'{network.name}' is a stack network (layers over a mini-batch): it has no per-example symbolic graph "
            f"to {command}. Its kernel is compiled from the formula sets {sets}, each proven for every size: "
            f"`derive prove {network.name}` shows the proofs, `derive gradcheck {network.name}` checks the kernel, "
            "and claims about one layer are checked on a module spec (examples/batchnorm-homework.toml)")


def run_derive(args) -> int:
    from derive.derivation import Derived
    from derive.graph.spec import load

    network = load(args.spec)
    refuse_stack(network, "derive")
    if network.missing_values:
        missing = ", ".join(s.name for s in network.missing_values[:8])
        more = " …" if len(network.missing_values) > 8 else ""
        print(f"derive: note: [values] has no number for {missing}{more}; "
              "quantities that depend on them are not evaluated", file=sys.stderr)
    from derive.graph.network import undefined_node

    problem = undefined_node(network)
    if problem is not None:
        node, why = problem
        print(f"derive: note: at [values], {node.name} has no finite value ({why}); "
              "it and the quantities that depend on it are not evaluated", file=sys.stderr)
    # One bar for the derivation and the writing out, which takes longer: every
    # closed form is printed (twice for --json: SymPy text and LaTeX).
    steps = len(network.parameters) + len(network.order)
    with progress_bar(steps + len(network.inputs) + steps, "deriving") as bar:
        derived = Derived(network, progress=bar.wrap)
        if args.json:
            data = derived.to_dict(progress=bar.wrap)
        elif args.latex:
            text = derive_latex(derived, progress=bar.wrap)
        else:
            text = derive_text(derived, progress=bar.wrap)
    if args.json:
        emit_json(data)
    else:
        print(text)
    return EXIT_OK


def run_prove(args) -> int:
    from derive.proof import prove
    from derive.graph.spec import load

    if args.general:
        return run_prove_general(args)
    network = load(args.spec)
    if network.kind == "stack":  # its kernel's formulas, proven for every size
        return run_prove_general(args, network)
    sets = formula_sets(args.formulas)
    applicable = applicable_sets(network, sets)
    if not applicable:
        names = ", ".join(s.id for s in sets)
        raise InputError(
            f"no formula of {names} applies to the network '{network.name}' "
            f"({network.kind}); see `derive list` for the sets and what they need"
        )
    report = prove(
        network,
        applicable,
        budget=args.budget,
        seed=args.seed,
        progress=lambda total: progress_bar(total, "proving"),
    )
    if args.json:  # emit_json's output, written in linear time (47,810 instances: 7 s → under 1 s)
        emit_json(report.to_dict())
    else:
        print(prove_text(report))
    return EXIT_OK if report.all_proven else EXIT_FAILED


def run_prove_general(args, network=None) -> int:
    from derive.graph.spec import load
    from derive.proof.general.report import prove_general

    sets = formula_sets(args.formulas)
    if args.spec is not None:
        network = network or load(args.spec)
    if network is not None and network.kind == "stack":  # the sets its layers' kernels are compiled from
        wanted = network.facts["formula_sets"]
        sets = [s for s in sets if s.id in wanted] if args.formulas else formula_sets(wanted)
        if not sets:
            raise InputError(f"'{network.name}' is compiled from the formula sets {', '.join(wanted)}: choose among them")
    elif network is not None:
        sets = [dataclasses.replace(s, formulas=tuple(s.applicable(network))) for s in sets]
        sets = [s for s in sets if s.formulas]
        if not sets:
            raise InputError(f"no formula of the chosen sets applies to the network '{network.name}'")
    report = prove_general(sets, budget=args.budget, progress=lambda total: progress_bar(total, "proving"))
    if args.json:
        emit_json(report.to_dict())
    else:
        print(general_text(report))
    return EXIT_OK if report.all_proven else EXIT_FAILED


def run_check(args) -> int:
    checked, bad_files = check_files(args.files, args)
    results = [r for _, r in checked]
    if args.json:
        if len(args.files) == 1:
            emit_json(results[0].to_dict())
        else:
            emit_json(
                {
                    "files": [r.to_dict() for r in results],
                    "errors": [{"file": p, "error": e} for p, e in bad_files],
                    "summary": class_summary(results),
                }
            )
    else:
        for result in results:
            print(check_text(result))
            print()
        if len(args.files) > 1:
            print(class_table(results, bad_files))
        for path, error in bad_files:
            print(f"derive: error: {error}", file=sys.stderr)
    if bad_files:
        return EXIT_BAD_INPUT
    return EXIT_OK if all(r.passed for r in results) else EXIT_FAILED


def run_train(args) -> int:
    from derive.files import refuse_overwriting_inputs
    from derive.kernels import KernelError, compile_kernel
    from derive.graph.spec import load
    from derive.train.training import TrainingDiverged, check_settings, load_data, load_parameters, save_parameters, settings_for, train

    if args.save:  # saving over --load updates a parameter file; over --data it would destroy the data
        data_file = args.data if args.data.lower().endswith(".npz") else None
        refuse_overwriting_inputs([args.save], [data_file])
    # the options given, checked before any work (the defaults they override are valid)
    given = {key: getattr(args, key) for key in ("epochs", "batch", "lr", "momentum") if getattr(args, key) is not None}
    check_settings(**{**settings_for(""), **given}, lmbda=args.lmbda)
    network = load(args.spec)
    try:
        kernel = compile_kernel(network, dtype=args.dtype)  # first: a network without numbers is the news
    except KernelError as exc:
        raise InputError(str(exc)) from None
    dataset = load_data(args.data, network, seed=args.seed)
    settings = {**settings_for(dataset.name, network), **given}
    initial = None
    try:
        if args.load:
            initial = load_parameters(kernel, args.load)
        bar = progress_bar(settings["epochs"], "training")

        def report(entry):
            shown = {"loss": f"{entry['loss']:.4g}"}
            if "train_accuracy" in entry:
                shown["accuracy"] = f"{100 * entry['train_accuracy']:.1f}%"
            bar.bar.set_postfix(shown, refresh=False)
            bar.update(1)

        with bar:
            result = train(
                network, dataset, seed=args.seed, dtype=args.dtype, initial=initial, lmbda=args.lmbda,
                kernel=kernel, progress=report, **settings,
            )
    except KernelError as exc:
        raise InputError(str(exc)) from None
    except TrainingDiverged as exc:
        if not args.json:
            raise
        print(f"derive: error: {exc}", file=sys.stderr)  # and the JSON says the same: --json always prints one value
        emit_json({"network": network.name, "data": dataset.name, "diverged": True, "epoch": exc.epoch,
                   "epochs": exc.epochs, "reason": exc.what, "error": str(exc), "settings": settings})
        return EXIT_FAILED
    if args.save:
        save_parameters(result.kernel, result.params, args.save)
    outcome = None
    if args.report:
        from derive.report import render, training_context

        context = training_context(result, settings, lang=args.lang, seed=args.seed)
        outcome = compile_report(render("training", context), Path(args.report), args.lang)
    small = len(network.parameters) <= 100
    if args.json:
        data = result.to_dict(with_parameters=small)
        data["settings"] = settings
        if outcome is not None:
            data["report"] = outcome.to_dict()
        emit_json(data)
    else:
        print(train_text(result, settings, show_parameters=small and dataset.name == "values"))
        if outcome is not None:
            print(report_line(outcome))
    return EXIT_FAILED if outcome is not None and not outcome.ok else EXIT_OK


def run_gradcheck(args) -> int:
    from derive.train.gradcheck import MAX_BATCH, MAX_POINTS, gradcheck
    from derive.kernels import KernelError
    from derive.graph.spec import load

    if not 1 <= args.points <= MAX_POINTS or not 1 <= args.batch <= MAX_BATCH:
        raise InputError(f"--points must be from 1 to {MAX_POINTS:,} and --batch from 1 to "
                         f"{MAX_BATCH:,} (every example is also evaluated in 40-digit arithmetic)")
    network = load(args.spec)
    try:
        result = gradcheck(network, points=args.points, batch=args.batch, seed=args.seed, dtype=args.dtype)
    except KernelError as exc:
        raise InputError(str(exc)) from None
    if args.json:
        emit_json(result.to_dict())
    else:
        print(result.text())
    return EXIT_OK if result.passed else EXIT_FAILED


def run_report(args) -> int:
    claims_inputs = [path for path in args.inputs if is_claims_file(path)]
    if len(args.inputs) > 1 and len(claims_inputs) < len(args.inputs):
        raise InputError("several inputs must all be claims files (one report each, and a class summary)")
    if args.template and not Path(args.template).is_file():
        raise InputError("no such template file", where=args.template)
    inputs = [*args.inputs, *(args.formulas or []), *([args.template] if args.template else [])]
    stems = dict(zip(claims_inputs, unique_stems(claims_inputs)))
    refuse_planned_outputs(args.output, stems if len(claims_inputs) > 1 else None, inputs)
    general = None
    if not claims_inputs:
        outcomes, passed, general = network_report(args, inputs)
        bad_files = []
    else:
        outcomes, passed, bad_files = claims_reports(args, claims_inputs, stems, inputs)
    if args.json:
        emit_json({
            "reports": [o.to_dict() for o in outcomes],
            "passed": passed,
            "errors": [{"file": p, "error": e} for p, e in bad_files],
            **({"general": general} if general is not None else {}),
        })
    else:
        for outcome in outcomes:
            print(report_line(outcome))
    if bad_files:
        return EXIT_BAD_INPUT
    if not all(o.ok for o in outcomes):
        return EXIT_FAILED
    return EXIT_OK if passed else EXIT_FAILED


def refuse_planned_outputs(output: str | None, stems: dict[str, str] | None, inputs: list[str]) -> None:
    """Before any work: no output may be one of the inputs (`--template my.tex -o my.pdf` writes my.tex).

    `stems` names the reports of several claims files, written into the directory `output`.
    """
    from derive.files import refuse_overwriting_inputs
    from derive.report.render import report_outputs

    if stems is not None:
        directory = Path(output or "reports")
        planned = [directory / f"{stem}.pdf" for stem in stems.values()] + [directory / "class-summary.pdf"]
    else:
        planned = [Path(output)] if output else []
    refuse_overwriting_inputs([path for p in planned for path in report_outputs(p)], inputs)


def network_report(args, inputs: list[str]):
    """A network's report: ([its outcome], whether every formula was proven, the --general proof's object or None).

    With --general, a formula a general model covers but does not prove fails the report too;
    one no general model covers does not (the proof table decides it for this network)."""
    from derive.files import refuse_overwriting_inputs
    from derive.report.render import network_report_context, render, report_outputs
    from derive.graph.spec import load

    network = load(args.inputs[0])
    refuse_stack(network, "report")
    output = Path(args.output or f"{network.name}-report.pdf")
    refuse_overwriting_inputs(report_outputs(output), inputs)
    context = network_report_context(network, lang=args.lang, explain=args.explain, formulas=args.formulas,
                                     budget=args.budget, seed=args.seed, general=args.general,
                                     progress=lambda total: progress_bar(total, "proving"))
    proofs, general = context["proofs"], context["general"]
    passed = proofs is None or proofs["summary"]["proven"] == proofs["summary"]["total"]
    if general is not None:
        passed = passed and general["summary"]["unproven"] == 0
    outcome = compile_report(render("network", context, template=args.template), output, args.lang)
    return [outcome], passed, None if general is None else general["record"]


def claims_reports(args, claims_inputs: list[str], stems: dict[str, str], inputs: list[str]):
    """The reports of claims files: (outcomes, whether every file passed, [(path, error) of bad files])."""
    from derive.files import refuse_overwriting_inputs
    from derive.report import class_context, claims_context, render
    from derive.report.render import report_outputs

    if args.explain:
        raise InputError("--explain is for a network's report, not a claims file's")
    if args.general:
        raise InputError("--general is for a network's report; for claims files, `derive check --general`")
    results, bad_files = check_files(claims_inputs, args, announce=True)
    passed = all(r.passed for _, r in results)
    outcomes = []
    if len(claims_inputs) == 1:
        path, result = results[0]
        output = Path(args.output or f"{Path(path).stem}-report.pdf")
        refuse_overwriting_inputs(report_outputs(output), inputs)
        tex = render("claims", claims_context(result, lang=args.lang), template=args.template)
        outcomes.append(compile_report(tex, output, args.lang))
        return outcomes, passed, bad_files
    directory = Path(args.output or "reports")
    if directory.suffix in (".pdf", ".tex"):
        raise InputError("several claims files need a directory for -o (one report each)", where=str(directory))
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot make the directory: {exc.strerror or exc}", where=str(directory)) from None
    for path, result in results:  # names from every input: a bad file does not rename the others
        tex = render("claims", claims_context(result, lang=args.lang), template=args.template)
        outcomes.append(compile_report(tex, directory / f"{stems[path]}.pdf", args.lang))
    summary = class_context([r for _, r in results], bad_files, lang=args.lang)
    outcomes.append(compile_report(render("class", summary, template=args.template),
                                   directory / "class-summary.pdf", args.lang))
    return outcomes, passed, bad_files


def check_files(paths: list[str], args, announce: bool = False):
    """Check each claims file: ([(path, FileResult)], [(path, error message)]).

    A single file's bad input is raised; of several, a bad file is set aside (and,
    with `announce`, its error printed at once) while the others are checked.
    """
    from derive.claims.check import check
    from derive.claims.claimsfile import load_claims

    results, bad_files = [], []
    for path in paths:
        try:
            claims_file = load_claims(path)
        except InputError as exc:
            if len(paths) == 1:
                raise
            bad_files.append((path, str(exc)))
            if announce:
                print(f"derive: error: {exc}", file=sys.stderr)
            continue
        with progress_bar(len(claims_file.claims), f"checking {Path(path).name}") as bar:
            results.append((path, check(claims_file, budget=args.budget, seed=args.seed, progress=bar.wrap)))
        if getattr(args, "general", False):
            from derive.claims.general_check import general_verdicts
            general_verdicts(results[-1][1], args.budget)
    return results, bad_files


def is_claims_file(path: str) -> bool:
    """A claims file names its network with `network = "…"`; a spec has a [network] table."""
    from derive.files import read_toml
    from derive.limits import MAX_CLAIMS_BYTES

    if Path(path).suffix != ".toml":
        return False
    try:
        data = read_toml(path, limit=MAX_CLAIMS_BYTES)
    except InputError:
        return False  # the spec loader reports what is wrong with it
    return isinstance(data.get("network"), str) or "claim" in data


def unique_stems(paths: list[str]) -> list[str]:
    """A file name per input: its stem, with a number added where two inputs share one."""
    seen: dict[str, int] = {}
    stems = []
    for path in paths:
        stem = Path(path).stem
        seen[stem] = seen.get(stem, 0) + 1
        stems.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return stems


def compile_report(tex: str, output: Path, lang: str):
    from derive.report.render import write_report
    from derive.report.tex import Terminated

    if output.suffix == ".pdf" and sys.stderr.isatty():
        print(f"derive: compiling {output} …", file=sys.stderr)
    try:
        outcome = write_report(tex, output, lang=lang)
    except Terminated:  # TeX's process group is killed and its directory removed by now
        print(f"derive: terminated while TeX compiled {output}; TeX was stopped", file=sys.stderr)
        raise SystemExit(143) from None
    if outcome.message:
        print(f"derive: {outcome.message}", file=sys.stderr)
    return outcome

