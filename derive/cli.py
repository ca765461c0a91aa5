"""The `derive` command line.

Data goes to stdout (text, or one JSON object with --json); messages and
progress bars go to stderr. Exit codes: 0 ok, 1 a refuted or undecided
formula (a failed check), 2 bad input, 3 an internal error.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from pathlib import Path
from typing import Sequence

from . import __version__
from .errors import DeriveError, InputError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed on one line
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        return args.run(args)
    except InputError as exc:
        print(f"derive: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except DeriveError as exc:
        print(f"derive: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("derive: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except RecursionError:
        print("derive: error: the input is nested too deeply to process", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # a bug of ours: say so in one line, with where to look
        print(f"derive: internal error ({type(exc).__name__}: {exc}); please report it", file=sys.stderr)
        return EXIT_INTERNAL


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------

DESCRIPTION = """\
Derive backpropagation symbolically and prove the textbook formulas.

Declare a network in a TOML spec (or use a built-in one), then:
  derive derive SPEC     every gradient ∂C/∂θ, every ∂C/∂v and the δ recurrences
  derive prove SPEC      prove Nielsen's BP1-BP4 and the other formula sets for it
  derive check FILE...   prove or refute a student's formulas, name each mistake
  derive train SPEC      train with numeric kernels generated from the derivation
  derive gradcheck SPEC  check those kernels against finite differences and the derivation
  derive report SPEC     the derivation, proofs and numbers as a LaTeX report, compiled to PDF
  derive list            the built-in networks, formula sets and data sets

SPEC is a path to a .toml file or the name of a built-in network.
Exit codes: 0 ok, 1 a formula refuted or undecided, 2 bad input, 3 internal error.
"""


# Option types: argparse turns their ArgumentTypeError into a usage line and exit 2,
# so no value on the command line reaches the code as nan, inf or a negative seed.
MAX_BUDGET = 3600.0  # seconds per identity
MAX_COUNT = 10**9


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line like every other error of derive (exit 2)."""

    def error(self, message: str):
        message = re.sub(r"^argument (-[-\w]+)(?:/[-\w]+)?: ", r"\1 ", message)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (usage: {self.prog} --help)\n")


def seconds(text: str) -> float:
    value = _float(text)
    if not 0 < value <= MAX_BUDGET:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, at most {MAX_BUDGET:g}")
    return value


def seed(text: str) -> int:
    value = _int(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError("must be an integer from 0 to 4294967295")
    return value


def finite(text: str) -> float:
    return _float(text)


def count(text: str) -> int:
    value = _int(text)
    if not 0 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to {MAX_COUNT:,}")
    return value


def _float(text: str) -> float:
    import math

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text[:40]}' is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError("must be a finite number (not nan or inf)")
    return value


def _int(text: str) -> int:
    if len(text) > 24:
        raise argparse.ArgumentTypeError(f"'{text[:24]}…' is too long for an integer option")
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="derive",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"derive {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = commands.add_parser(
        "list",
        help="list the built-in networks and formula sets",
        description="List the built-in networks (usable wherever a SPEC is asked for) and formula sets.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_list, command="list")

    p = commands.add_parser(
        "derive",
        help="derive every gradient, node derivative and δ recurrence",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Derive ∂C/∂θ for every parameter θ, ∂C/∂v for every intermediate node v
            (the neuron error δ for a net input z) and each δ's backward recurrence
            in terms of the δs of the nodes it feeds, by reverse mode over the graph.

            In the output, D(C, v) stands for ∂C/∂v. With [values] in the spec, every
            quantity is also evaluated at that point.

            examples:
              derive derive two-two-two
              derive derive my-net.toml --latex
              derive derive book-12-3-2 --json > gradients.json
            """
        ),
    )
    p.add_argument("spec", metavar="SPEC", help="a spec file (.toml) or a built-in network's name")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print one JSON object")
    out.add_argument("--latex", action="store_true", help="print LaTeX (an align* environment)")
    p.set_defaults(run=run_derive, command="derive")

    p = commands.add_parser(
        "prove",
        help="prove the textbook formulas (BP1-BP4, …) for a network",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Instantiate every applicable formula of the chosen formula sets for each
            layer and index of the network, and decide each instance:

              proven     an exact symbolic argument reached zero
              refuted    a counterexample: exact values of every input, target and
                         parameter (and a concrete σ where σ is generic) at which
                         the two sides differ, in exact or interval arithmetic
              undecided  neither within the time budget; says at how many random
                         points the sides agreed (evidence, not a proof)

            examples:
              derive prove book-12-3-2
              derive prove generic-3-4-4-2 --formulas nielsen
              derive prove my-net.toml --formulas my-formulas.toml --json
            """
        ),
    )
    p.add_argument("spec", metavar="SPEC", help="a spec file (.toml) or a built-in network's name")
    p.add_argument(
        "--formulas",
        metavar="SET",
        nargs="+",
        action="extend",
        help="formula sets to prove: built-in ids (see `derive list`) or .toml files (default: every built-in set)",
    )
    p.add_argument("--budget", type=seconds, default=5.0, metavar="SECONDS", help="time per identity: search, algebra and evidence together (default 5)")
    p.add_argument("--seed", type=seed, default=0, help="seed for the random points of counterexample search")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_prove, command="prove")

    p = commands.add_parser(
        "check",
        help="prove or refute the formulas of claims files (homework) and name the mistakes",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Check each claim of one or more claims files against the derivation:
            proven, refuted (with a counterexample, the correct formula in the
            claim's own names and, when one applies, the name of the mistake) or
            undecided. A claim with `expect = "proven"` or `"refuted"` passes when it
            gets that verdict, so a teacher's answer key doubles as a test.

            A claims file names its network and lists [[claim]] tables:

              network = "two-two-two"          # a built-in name or a spec path
              [definitions]
              delta_o1 = "(outo1 - y1)*outo1*(1 - outo1)"
              [[claim]]
              name = "dE/dw5"
              wrt = "w5"
              formula = "delta_o1*outh1"

            Diagnoses: sign, constant-factor, wrong-quantity, missing-sigma-prime,
            sigma-for-sigma-prime, transposed-index, wrong-weight, wrong-unit,
            shared-parameter, missing-path.

            examples:
              derive check examples/two-two-two-homework.toml
              derive check hw/*.toml                # a class: one summary table
              derive check answers.toml --json
            """
        ),
    )
    p.add_argument("files", metavar="FILE", nargs="+", help="claims files (.toml)")
    p.add_argument("--budget", type=seconds, default=5.0, metavar="SECONDS", help="time per identity: search, algebra and evidence together (default 5)")
    p.add_argument("--seed", type=seed, default=0, help="seed for the random points of counterexample search")
    p.add_argument("--json", action="store_true", help="print JSON: one object per file (a list under 'files' for several)")
    p.set_defaults(run=run_check, command="check")

    p = commands.add_parser(
        "train",
        help="train the network with kernels generated from its derivation",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Mini-batch SGD (with optional momentum) using the numeric kernel generated
            from the network's proven derivation. Each built-in data set has defaults
            that train it well, so no tuning flags are needed:

              book-0-1     3x4 images of 0 and 1 (the book's 12-3-2 example)
              book-1-2-3   6x6 images of 1, 2 and 3 (the book's CNN example)
              digits       scikit-learn's 8x8 handwritten digits, fixed train/test split
              values       the spec's [values] point as one example, from the spec's
                           parameters: one step to compare with a worked example
              FILE.npz     your own arrays x and y (optionally x_test, y_test)

            Saved parameters (.npz) hold one array per layer block (W2, b2, … for a
            layered network, W^l[j, k] from unit k to unit j; WF, bF, WO, bO for a CNN)
            or one per parameter name (free-form).

            examples:
              derive train digits-64-30-10 --data digits
              derive train book-cnn --data book-1-2-3 --save cnn.npz
              derive train two-two-two --data values --epochs 1 --lr 0.5
            """
        ),
    )
    p.add_argument("spec", metavar="SPEC", help="a spec file (.toml) or a built-in network's name")
    p.add_argument("--data", required=True, metavar="NAME", help="book-0-1, book-1-2-3, digits, values or a .npz file")
    p.add_argument("--epochs", type=count, metavar="N", help="passes over the training data")
    p.add_argument("--batch", type=count, metavar="M", help="examples per gradient step")
    p.add_argument("--lr", type=finite, metavar="ETA", help="learning rate η")
    p.add_argument("--momentum", type=finite, metavar="MU", help="momentum μ (0 for plain SGD)")
    p.add_argument("--lmbda", type=finite, default=1.0, metavar="LAMBDA", help="L2 strength λ for networks with L2 (default 1)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the initial parameters and the shuffles")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--save", metavar="FILE", help="write the trained parameters to FILE.npz")
    p.add_argument("--load", metavar="FILE", help="start from the parameters in FILE.npz")
    p.add_argument("--report", metavar="FILE", help="also write a report (.pdf or .tex) with loss and accuracy curves")
    p.add_argument("--lang", choices=("en", "zh"), default="en", help="the report's language")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_train, command="train")

    p = commands.add_parser(
        "report",
        help="write a LaTeX report (derivation, proofs, numbers, grading) and compile it to PDF",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Render a report from the Jinja templates in reports/ and compile it with
            latexmk (pdfLaTeX; XeLaTeX for Chinese and other Unicode text). The .tex is
            written beside the PDF, and kept when TeX fails.

            For a SPEC: the network (equations and a TikZ drawing of the graph), every
            δ recurrence and gradient, the proof table of every applicable formula set
            with each refutation's counterexample, and, when the spec has [values],
            every node and gradient at that point beside a finite-difference check.
            For a claims FILE: the grading table, each refutation's counterexample,
            the correct formula and the mistake. For several claims files: one report
            per file and class-summary.pdf, in the directory given by -o.

            Exit code: as `derive prove` / `derive check` on the same input (0 all
            proven, 1 a refuted or undecided formula or claim), and 1 also when no
            PDF could be made; 2 for bad input.

            examples:
              derive report two-two-two --explain w1 -o two-two-two.pdf
              derive report book-cnn -o cnn.pdf --lang zh
              derive report examples/two-two-two-homework.toml -o graded.pdf
              derive report hw/*.toml -o graded/
              derive report book-12-3-2 -o book.tex          # LaTeX only
              derive train digits-64-30-10 --data digits --report training.pdf
            """
        ),
    )
    p.add_argument("inputs", metavar="SPEC_OR_CLAIMS", nargs="+",
                   help="a spec (.toml or built-in name), or one or more claims files")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="report.pdf or report.tex; a directory for several claims files "
                        "(default: NAME-report.pdf here)")
    p.add_argument("--explain", metavar="NAME", help="write out the chain rule for one parameter or node, path by path")
    p.add_argument("--lang", choices=("en", "zh"), default="en", help="report language (zh: Chinese headings and labels)")
    p.add_argument("--template", metavar="FILE", help="your own Jinja template, with the context of reports/README.md")
    p.add_argument("--formulas", metavar="SET", nargs="+", action="extend",
                   help="formula sets to prove (default: every built-in set that applies)")
    p.add_argument("--budget", type=seconds, default=5.0, metavar="SECONDS", help="time per identity: search, algebra and evidence together (default 5)")
    p.add_argument("--seed", type=seed, default=0, help="seed for the random points of counterexample search")
    p.add_argument("--json", action="store_true", help="print one JSON object describing what was written")
    p.set_defaults(run=run_report, command="report")

    p = commands.add_parser(
        "gradcheck",
        help="check the generated kernel against finite differences and the symbolic derivation",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            At random parameters and a random batch, compare the kernel's gradient with
            central finite differences and with the symbolic derivation evaluated in
            40-digit arithmetic. Prints the worst relative error per parameter group
            and the tolerances used; exit 1 above tolerance. float64 kernels are held
            to 1e-6 (finite differences) and 1e-10 (symbolic); float32 kernels to
            float32 rounding (about 1e-3), both at the rounded point they compute at.

            examples:
              derive gradcheck book-cnn
              derive gradcheck softmax-4-5-3 --dtype float32 --json
            """
        ),
    )
    p.add_argument("spec", metavar="SPEC", help="a spec file (.toml) or a built-in network's name")
    p.add_argument("--points", type=count, default=2, help="random points (default 2)")
    p.add_argument("--batch", type=count, default=4, help="examples per point (default 4)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_gradcheck, command="gradcheck")
    return parser


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------


def run_list(args) -> int:
    from .formulas import builtin_sets
    from .spec import builtin_names, load

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
    from .data import DESCRIPTIONS

    data = [{"name": name, "description": text} for name, text in DESCRIPTIONS.items()]
    if args.json:
        emit_json({"networks": networks, "formula_sets": sets, "data_sets": data})
        return EXIT_OK
    print("Built-in networks (use the name wherever a SPEC is asked for):")
    for n in networks:
        print(f"  {n['name']:<24} {n['kind']:<10} {n['parameters']:>4} parameters  {n['description']}")
    print("\nFormula sets (derive prove SPEC --formulas ID):")
    for s in sets:
        print(f"  {s['id']:<24} {len(s['formulas']):>2} formulas  {s['title']}")
        print(f"  {'':<24} source: {s['source']}")
    print("\nData sets (derive train SPEC --data NAME):")
    for d in data:
        print(f"  {d['name']:<24} {d['description']}")
    return EXIT_OK


def run_derive(args) -> int:
    from .derivation import Derived
    from .spec import load

    network = load(args.spec)
    if network.missing_values:
        missing = ", ".join(s.name for s in network.missing_values[:8])
        more = " …" if len(network.missing_values) > 8 else ""
        print(f"derive: note: [values] has no number for {missing}{more}; "
              "quantities that depend on them are not evaluated", file=sys.stderr)
    from .network import undefined_node

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
    from .proof import prove
    from .spec import load

    network = load(args.spec)
    sets = formula_sets(args.formulas)
    applicable = [s for s in sets if s.applicable(network)]
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


def run_check(args) -> int:
    from .check import check
    from .claims import load_claims

    outcomes = []  # (path, FileResult | None, error message | None)
    for path in args.files:
        try:
            claims_file = load_claims(path)
        except InputError as exc:
            if len(args.files) == 1:
                raise
            outcomes.append((path, None, str(exc)))
            continue
        with progress_bar(len(claims_file.claims), f"checking {Path(path).name}") as bar:
            result = check(claims_file, budget=args.budget, seed=args.seed, progress=bar.wrap)
        outcomes.append((path, result, None))
    results = [r for _, r, _ in outcomes if r is not None]
    bad_files = [(p, e) for p, _, e in outcomes if e is not None]
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
    from .kernels import KernelError
    from .spec import load
    from .files import refuse_overwriting_inputs
    from .train import TrainingDiverged, check_settings, load_data, load_parameters, save_parameters, settings_for, train

    from .kernels import compile_kernel

    if args.save:  # saving over --load updates a parameter file; over --data it would destroy the data
        data_file = args.data if args.data.lower().endswith(".npz") else None
        refuse_overwriting_inputs([args.save], [data_file])
    check_settings(epochs=args.epochs or 0, batch=args.batch or 1, lr=1.0 if args.lr is None else args.lr,
                   momentum=args.momentum or 0.0, lmbda=args.lmbda)
    network = load(args.spec)
    try:
        kernel = compile_kernel(network, dtype=args.dtype)  # first: a network without numbers is the news
    except KernelError as exc:
        raise InputError(str(exc)) from None
    dataset = load_data(args.data, network, seed=args.seed)
    settings = settings_for(dataset.name)
    for key in ("epochs", "batch", "lr", "momentum"):
        given = getattr(args, key)
        if given is not None:
            settings[key] = given
    check_settings(**settings, lmbda=args.lmbda)
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
        from .report import render, training_context

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


def run_gradcheck(args) -> int:
    from .gradcheck import MAX_BATCH, MAX_POINTS, gradcheck
    from .kernels import KernelError
    from .spec import load

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
    from .report import class_context, claims_context, network_context, render

    claims_inputs = [path for path in args.inputs if is_claims_file(path)]
    if len(args.inputs) > 1 and len(claims_inputs) < len(args.inputs):
        raise InputError("several inputs must all be claims files (one report each, and a class summary)")
    if args.template and not Path(args.template).is_file():
        raise InputError("no such template file", where=args.template)
    template = args.template
    # Before any work: no output may be one of the inputs (`--template my.tex -o my.pdf` writes my.tex).
    from .files import refuse_overwriting_inputs
    from .report import report_outputs

    inputs = [*args.inputs, *(args.formulas or []), *([template] if template else [])]
    stems = dict(zip(claims_inputs, unique_stems(claims_inputs)))
    if len(claims_inputs) > 1:
        directory = Path(args.output or "reports")
        planned = [directory / f"{stem}.pdf" for stem in stems.values()] + [directory / "class-summary.pdf"]
    else:
        planned = [Path(args.output)] if args.output else []
    refuse_overwriting_inputs([path for p in planned for path in report_outputs(p)], inputs)

    outcomes, bad_files = [], []
    if not claims_inputs:
        from .spec import load

        network = load(args.inputs[0])
        output = Path(args.output or f"{network.name}-report.pdf")
        refuse_overwriting_inputs(report_outputs(output), inputs)
        formulas = formula_sets(args.formulas) if args.formulas else None
        context = network_context(network, lang=args.lang, explain=args.explain, formulas=formulas,
                                  budget=args.budget, seed=args.seed,
                                  progress=lambda total: progress_bar(total, "proving"))
        proofs = context["proofs"]
        passed = proofs is None or proofs["summary"]["proven"] == proofs["summary"]["total"]
        outcomes.append(compile_report(render("network", context, template=template), output, args.lang))
    else:
        from .check import check
        from .claims import load_claims

        if args.explain:
            raise InputError("--explain is for a network's report, not a claims file's")
        results = []
        for path in claims_inputs:
            try:
                claims_file = load_claims(path)
            except InputError as exc:
                if len(claims_inputs) == 1:
                    raise
                bad_files.append((path, str(exc)))
                print(f"derive: error: {exc}", file=sys.stderr)
                continue
            with progress_bar(len(claims_file.claims), f"checking {Path(path).name}") as bar:
                results.append((path, check(claims_file, budget=args.budget, seed=args.seed, progress=bar.wrap)))
        passed = all(r.passed for _, r in results)
        if len(claims_inputs) == 1:
            path, result = results[0]
            output = Path(args.output or f"{Path(path).stem}-report.pdf")
            refuse_overwriting_inputs(report_outputs(output), inputs)
            tex = render("claims", claims_context(result, lang=args.lang), template=template)
            outcomes.append(compile_report(tex, output, args.lang))
        else:
            directory = Path(args.output or "reports")
            if directory.suffix in (".pdf", ".tex"):
                raise InputError("several claims files need a directory for -o (one report each)", where=str(directory))
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(f"cannot make the directory: {exc.strerror or exc}", where=str(directory)) from None
            for path, result in results:  # names from every input: a bad file does not rename the others
                stem = stems[path]
                tex = render("claims", claims_context(result, lang=args.lang), template=template)
                outcomes.append(compile_report(tex, directory / f"{stem}.pdf", args.lang))
            summary = class_context([r for _, r in results], bad_files, lang=args.lang)
            outcomes.append(compile_report(render("class", summary, template=template),
                                           directory / "class-summary.pdf", args.lang))
    if args.json:
        emit_json({
            "reports": [o.to_dict() for o in outcomes],
            "passed": passed,
            "errors": [{"file": p, "error": e} for p, e in bad_files],
        })
    else:
        for outcome in outcomes:
            print(report_line(outcome))
    if bad_files:
        return EXIT_BAD_INPUT
    if not all(o.ok for o in outcomes):
        return EXIT_FAILED
    return EXIT_OK if passed else EXIT_FAILED


def is_claims_file(path: str) -> bool:
    """A claims file names its network with `network = "…"`; a spec has a [network] table."""
    from .files import read_toml
    from .limits import MAX_CLAIMS_BYTES

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
    from .report import write_report
    from .tex import Terminated

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


def report_line(outcome) -> str:
    if outcome.pdf_path is not None:
        pages = f", {outcome.pages} pages" if outcome.pages else ""
        return f"wrote {outcome.pdf_path} ({outcome.engine}{pages}) and {outcome.tex_path}"
    if outcome.ok:
        return f"wrote {outcome.tex_path}"
    return f"wrote {outcome.tex_path} only (no PDF)"


def class_summary(results) -> dict:
    total = sum(r.summary()["total"] for r in results)
    proven = sum(r.summary()["proven"] for r in results)
    return {"files": len(results), "claims": total, "proven": proven, "passed_files": sum(r.passed for r in results)}


def formula_sets(requested: list[str] | None):
    from .formulas import builtin_sets, load_set

    builtin = builtin_sets()
    if not requested:
        return list(builtin.values())
    sets = []
    for item in requested:
        if item in builtin:
            sets.append(builtin[item])
        elif item.endswith(".toml") or Path(item).exists():
            sets.append(load_set(item))
        else:
            raise InputError(f"no formula set '{item}' (built-in: {', '.join(builtin)}; or give a .toml path)")
    return sets


# ---------------------------------------------------------------------------
# Text and LaTeX output
# ---------------------------------------------------------------------------


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


VERDICT_MARK = {"proven": "✓ proven", "refuted": "✗ refuted", "undecided": "? undecided"}


def check_text(result) -> str:
    cf = result.claims_file
    header = f"{cf.path}: {len(result.results)} claims on {cf.network.name}"
    if cf.student:
        header += f" ({cf.student})"
    rows = [("claim", "verdict", "diagnosis")]
    for r in result.results:
        verdict = VERDICT_MARK[r.verdict.status]
        if r.claim.expect is not None and not r.expect_matched:
            if r.claim.expect == r.verdict.status and r.claim.expect_diagnosis is not None:
                verdict += f"  (expected diagnosis {r.claim.expect_diagnosis}!)"
            else:
                verdict += f"  (expected {r.claim.expect}!)"
        rows.append((r.claim.name, verdict, r.diagnosis.id if r.diagnosis else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [header]
    for i, row in enumerate(rows):
        lines.append("  " + "  ".join(cell.ljust(widths[k]) for k, cell in enumerate(row)).rstrip())
        if i == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    for r in result.results:
        if r.verdict.status == "proven":
            continue
        lines.append("")
        lines.append(f"{r.claim.name}: {r.verdict.status}")
        lines.append(f"  claimed:  {r.claim.text}")
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
    if summary["expect_mismatches"]:
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


# ---------------------------------------------------------------------------
# Streams
# ---------------------------------------------------------------------------


def emit_json(data) -> None:
    """One complete JSON value on stdout, or nothing: it is built whole before a byte is written.

    JSON has no NaN or infinity: a non-finite float is written as null.
    """
    from .jsontext import json_text

    try:
        text = json_text(data)
    except ValueError:  # a NaN or an infinity somewhere: walk the data only then
        text = json_text(_finite_json(data))
    sys.stdout.write(text + "\n")


def _finite_json(data):
    """`data` with every non-finite float replaced by None (an iterative walk: deep data cannot recurse)."""
    import math

    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if hasattr(value, "dtype") and getattr(value, "shape", None) == ():  # a numpy scalar
            value = value.item()
            return None if isinstance(value, float) and not math.isfinite(value) else value
        return value

    root = [clean(data)]
    stack = [(root, 0)]
    while stack:
        container, key = stack.pop()
        value = container[key]
        if isinstance(value, dict):
            value = container[key] = {k: clean(v) for k, v in value.items()}
            stack.extend((value, k) for k in value)
        elif isinstance(value, (list, tuple)):
            value = container[key] = [clean(v) for v in value]
            stack.extend((value, i) for i in range(len(value)))
    return root[0]


class progress_bar:
    """A tqdm bar on stderr, drawn only when stderr is a terminal and the work is long."""

    def __init__(self, total: int, description: str):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=description, file=sys.stderr, disable=None, leave=False, delay=1.0)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def wrap(self, items):
        for item in items:
            yield item
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
