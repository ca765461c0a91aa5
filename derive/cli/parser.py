"""The `derive` command line's argument parser: one function per command, and the option types.

Every value is checked here, on one line: argparse turns an option type's
ArgumentTypeError into `derive COMMAND: error: … (usage: …)` and exit 2.
"""

from __future__ import annotations

import argparse
import re
import textwrap

from derive import __version__
from derive.cli import EXIT_BAD_INPUT
from derive.cli.grade import add_grade
from derive.cli.serve import add_serve
from derive.cli.commands import run_check, run_derive, run_gradcheck, run_list, run_prove, run_report, run_train


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
    for add in (add_list, add_derive, add_prove, add_check, add_train, add_report, add_gradcheck):
        add(commands)
    add_grade(commands, add_search_options)
    add_serve(commands, seconds)
    return parser


def add_spec(p: argparse.ArgumentParser) -> None:
    """The SPEC argument of the commands that take one network."""
    p.add_argument("spec", metavar="SPEC", help="a spec file (.toml) or a built-in network's name")


def add_search_options(p: argparse.ArgumentParser) -> None:
    """--budget and --seed of the commands that decide identities (prove, check, report)."""
    p.add_argument("--budget", type=seconds, default=5.0, metavar="SECONDS", help="time per identity: search, algebra and evidence together (default 5)")
    p.add_argument("--seed", type=seed, default=0, help="seed for the random points of counterexample search")


def add_list(commands) -> None:
    p = commands.add_parser(
        "list",
        help="list the built-in networks and formula sets",
        description="List the built-in networks (usable wherever a SPEC is asked for) and formula sets.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_list, command="list")


def add_derive(commands) -> None:
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
    add_spec(p)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print one JSON object")
    out.add_argument("--latex", action="store_true", help="print LaTeX (an align* environment)")
    p.set_defaults(run=run_derive, command="derive")


def add_prove(commands) -> None:
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

            With --general (no SPEC needed), prove each formula for every size at
            once: symbolic widths size[1..L], any depth L of a layered network, any
            d, q, l of Zhou's network, a generic σ and cost where the formula allows.
            The multivariable chain rule is the one step taken as given; each partial
            derivative comes from differentiating the model's definitions, Kronecker
            deltas are contracted, and the two sides must reach one canonical form.
            BP1 (the base, l = L) and BP2 (the step, l from l+1) give δ^l at every
            layer by induction. Each step of the argument is printed (and in --json).
            Convolution is covered for any image, kernel and window size (max pooling
            where no window has a tie, as each such proof states). A formula the
            general models do not cover (a free-form network's) says so: its
            per-instance proof is the one to use.

            examples:
              derive prove book-12-3-2
              derive prove generic-3-4-4-2 --formulas nielsen
              derive prove my-net.toml --formulas my-formulas.toml --json
              derive prove --general --formulas nielsen zhou
              derive prove --general --json
            """
        ),
    )
    p.add_argument("spec", metavar="SPEC", nargs="?",
                   help="a spec file (.toml) or a built-in network's name (optional with --general: then only "
                        "the formulas that apply to it)")
    p.add_argument("--general", action="store_true",
                   help="prove for every width and depth, not for one network's sizes")
    p.add_argument(
        "--formulas",
        metavar="SET",
        nargs="+",
        action="extend",
        help="formula sets to prove: built-in ids (see `derive list`) or .toml files (default: every built-in set)",
    )
    add_search_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_prove, command="prove", usage_error=p.error)


def add_check(commands) -> None:
    p = commands.add_parser(
        "check",
        help="prove or refute the formulas of claims files (homework) and name the mistakes",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Check each claim of one or more claims files against the derivation:
            proven, refuted (with a counterexample, the correct formula in the
            claim's own names and, when one applies, the name of the mistake),
            undecided, or unparsed (with the column and what was expected there;
            the file's other claims are still graded). A claim with `expect =
            "proven"` or `"refuted"` passes when it gets that verdict, so a
            teacher's answer key doubles as a test.

            A claims file names its network and lists [[claim]] tables:

              network = "two-two-two"          # a built-in name or a spec path
              [definitions]
              delta_o1 = "(outo1 - y1)*outo1*(1 - outo1)"
              [[claim]]
              name = "dE/dw5"
              wrt = "w5"
              formula = "delta_o1*outh1"

            Formulas as textbooks print them (LaTeX, syntax = "latex"): free
            indices and layers are decided at every value where the names exist,
            A = B = C link by link, whole layers as matrices:

              formula = '\\frac{\\partial C}{\\partial w^l_{jk}} = a^{l-1}_k \\delta^l_j'
              formula = '''\\delta^l = ((w^{l+1})^T \\delta^{l+1}) \\odot \\sigma'(z^l)'''   # ''' for a prime

            In SymPy syntax (the default) a whole layer is a family with one index,
            the layer (delta[l], w[l+1], a[l-1]), with NumPy's operators: @ the
            matrix product, * elementwise, .T the transpose; D(C, w[l]) is ∂C/∂w^l:

              formula = "delta[l] = (w[l+1].T @ delta[l+1]) * sigma_prime(z[l])"
              formula = "D(C, w[l]) = delta[l] @ a[l-1].T"

            With --general, a matrix claim or an index claim (free letters l, j, k)
            is also decided for every width and depth (and every m of a mini-batch):
            proven by a symbolic argument over symbolic sizes, or refuted on the
            smallest network where it fails (which says where it held: a claim true
            only for square layers or for m = 1 is refuted with a size where it fails).
            A mini-batch network (batch = m) reads the deeplearning.ai course's
            matrices, an affine layer (affine = [N, D, M]) an assignment's dout:

              formula = 'dW^{[l]} = \\frac{1}{m} dZ^{[l]} A^{[l-1]T}'
              formula = 'db^{[l]} = \\frac{1}{m} np.sum(dZ^{[l]}, axis=1, keepdims=True)'
              formula = 'dx = dout \\cdot w^T'

            Diagnoses: sign, constant-factor, wrong-quantity, missing-sigma-prime,
            sigma-for-sigma-prime, transposed-index, wrong-weight, wrong-unit,
            shared-parameter, missing-path, one-hot, shape.

            examples:
              derive check examples/nielsen-index-homework.toml
              derive check examples/two-two-two-homework.toml
              derive check hw/*.toml                # a class: one summary table
              derive check answers.toml --json
            """
        ),
    )
    p.add_argument("files", metavar="FILE", nargs="+", help="claims files (.toml)")
    p.add_argument("--general", action="store_true",
                   help="decide each matrix or index claim for every width and depth (and batch size): proven for "
                        "every size, or refuted on the smallest network where it fails")
    add_search_options(p)
    p.add_argument("--json", action="store_true", help="print JSON: one object per file (a list under 'files' for several)")
    p.set_defaults(run=run_check, command="check")


def add_train(commands) -> None:
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
    add_spec(p)
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


def add_report(commands) -> None:
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

            With --general (a SPEC's report), a section "Proofs for every size" adds
            `derive prove SPEC --general`: each formula of those sets proven once for
            every width and depth, its assumptions, its left side step by step with
            each step's reason, its right side and the conclusion; the inductions
            that give δ at every layer; the formulas no general model covers, with
            the reason. --json then holds that proof's object under "general".

            Exit code: as `derive prove` / `derive check` on the same input (0 all
            proven, 1 a refuted or undecided formula or claim; with --general, 1 also
            for a formula a general model covers but does not prove), and 1 also when
            no PDF could be made; 2 for bad input.

            examples:
              derive report two-two-two --explain w1 -o two-two-two.pdf
              derive report book-cnn -o cnn.pdf --lang zh
              derive report examples/two-two-two-homework.toml -o graded.pdf
              derive report hw/*.toml -o graded/
              derive report book-12-3-2 -o book.tex          # LaTeX only
              derive report generic-2-3-2 --general -o general.pdf
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
    p.add_argument("--general", action="store_true",
                   help="add the proofs for every size (as `derive prove SPEC --general`), step by step")
    add_search_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object describing what was written")
    p.set_defaults(run=run_report, command="report")


def add_gradcheck(commands) -> None:
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
    add_spec(p)
    p.add_argument("--points", type=count, default=2, help="random points (default 2)")
    p.add_argument("--batch", type=count, default=4, help="examples per point (default 4)")
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_gradcheck, command="gradcheck")
