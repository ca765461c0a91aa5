"""The `derive` command line.

Data goes to stdout (text, or one JSON object with --json); messages and
progress bars go to stderr. Exit codes: 0 ok, 1 a refuted or undecided
formula (a failed check), 2 bad input, 3 an internal error.

  parser.py    the argument parser, one function per command, and the option types
  commands.py  the commands (run_*): read the input, call the library, print
  text.py      every text and LaTeX output
  streams.py   one whole JSON value on stdout; progress bars on stderr
"""

from __future__ import annotations

import sys
from typing import Sequence

from derive.errors import DeriveError, InputError

# Before the submodules are imported: they take the exit codes from here.
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3

from derive.cli.commands import (  # noqa: E402
    check_files,
    compile_report,
    formula_sets,
    is_claims_file,
    run_check,
    run_derive,
    run_gradcheck,
    run_list,
    run_prove,
    run_report,
    run_train,
    unique_stems,
)
from derive.cli.parser import DESCRIPTION, MAX_BUDGET, MAX_COUNT, Parser, build_parser, count, finite, seconds, seed  # noqa: E402
from derive.cli.streams import emit_json, progress_bar  # noqa: E402
from derive.cli.text import (  # noqa: E402
    VERDICT_MARK,
    check_text,
    class_summary,
    class_table,
    derive_latex,
    derive_text,
    list_text,
    prove_text,
    report_line,
    train_text,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed on one line
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    if not getattr(args, "command", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    if args.command == "prove" and args.spec is None and not args.general:
        try:  # SPEC is optional only with --general: the usage error argparse gives for a missing argument
            args.usage_error("the following arguments are required: SPEC (unless --general is given)")
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
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


__all__ = [
    "EXIT_OK", "EXIT_FAILED", "EXIT_BAD_INPUT", "EXIT_INTERNAL", "main",
    "DESCRIPTION", "MAX_BUDGET", "MAX_COUNT", "Parser", "build_parser", "count", "finite", "seconds", "seed",
    "run_check", "run_derive", "run_gradcheck", "run_list", "run_prove", "run_report", "run_train",
    "check_files", "compile_report", "formula_sets", "is_claims_file", "unique_stems",
    "emit_json", "progress_bar",
    "VERDICT_MARK", "check_text", "class_summary", "class_table", "derive_latex", "derive_text", "list_text",
    "prove_text", "report_line", "train_text",
]
