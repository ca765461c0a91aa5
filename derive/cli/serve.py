"""`derive serve`: the student page, the JSON API and the teacher pages on one port."""

from __future__ import annotations

import argparse
import secrets
import sys
import textwrap
from pathlib import Path

from derive.cli.grade import jobs
from derive.errors import InputError

MIN_TOKEN = 16


def add_serve(commands, seconds) -> None:
    p = commands.add_parser(
        "serve",
        help="serve a web page where students check formulas, with a JSON API and teacher pages",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=textwrap.dedent(
            """\
            Start a web server: a page where a student picks a network (or a
            question of --assignment), types a formula in LaTeX or SymPy syntax,
            sees it rendered as derive read it (MathML from the parse tree) and
            gets the verdict, the counterexample and the mistake's name.

              GET  /                  the student page (?lang=zh for Chinese)
              POST /api/check         {"network": "two-two-two", "wrt": "w5",
                                       "formula": "...", "syntax": "latex"}
                                      or {"question": "q1", "student": "ada", ...}
              POST /api/preview       the same body: the formula as read (MathML)
              GET  /api/networks      what can be checked
              GET  /teacher?token=T   submissions, gradebook, class summary
              GET  /teacher/gradebook.csv?token=T

            Submissions and grades go to a SQLite file (--db; by default beside
            the assignment), in derive grade's schema. The teacher token is
            printed at start-up (or read from --token-file). Each check runs in a
            worker process with a memory cap, within the --budget; bodies over
            64 KiB are refused, and each client gets --rate requests a minute.
            Put it behind a reverse proxy for HTTPS (see the README) and pass
            --trust-proxy there so that clients are told apart.

            examples:
              derive serve
              derive serve --assignment examples/class/assignment.toml --port 8000
              derive serve --assignment hw3.toml --token-file teacher.token --jobs 4
            """
        ),
    )
    p.add_argument("--assignment", metavar="FILE", help="serve this assignment's questions (and keep a gradebook)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--db", metavar="PATH", help="the SQLite file (default: ASSIGNMENT.serve.sqlite, or derive-serve.sqlite)")
    p.add_argument("--token-file", metavar="FILE", help="the teacher token, the file's first line (at least 16 characters)")
    p.add_argument("--jobs", type=jobs, default=2, help="worker processes that decide formulas (default 2)")
    p.add_argument("--budget", type=seconds, default=2.0, metavar="SECONDS", help="time per identity (default 2)")
    p.add_argument("--rate", type=int, default=60, help="requests a minute per client (0: no limit; default 60)")
    p.add_argument("--trust-proxy", action="store_true", help="tell clients apart by X-Forwarded-For (behind a proxy)")
    p.add_argument("--no-correct", action="store_true", help="never show the correct formula")
    p.set_defaults(run=run_serve, command="serve")


def read_token(path: str | None) -> str:
    if path is None:
        return secrets.token_urlsafe(24)
    from derive.files import read_text

    lines = read_text(path, limit=4096, where=path).splitlines()
    token = lines[0].strip() if lines else ""
    if len(token) < MIN_TOKEN:
        raise InputError(f"the token must have at least {MIN_TOKEN} characters", where=path)
    return token


def run_serve(args) -> int:
    from derive.cli import EXIT_OK
    from derive.grade.assignment import load_assignment

    try:
        import uvicorn

        from derive.serve.app import Config, create_app
    except ImportError:
        raise InputError("derive serve needs Starlette and uvicorn: pip install 'derive[serve]'") from None

    if not 1 <= args.port <= 65535 or args.rate < 0:
        raise InputError("--port from 1 to 65535, --rate 0 or more")
    assignment = load_assignment(args.assignment) if args.assignment else None
    db = Path(args.db) if args.db else (Path(args.assignment).with_suffix(".serve.sqlite") if args.assignment
                                        else Path("derive-serve.sqlite"))
    token = read_token(args.token_file)
    config = Config(assignment=assignment, db=db, token=token, jobs=args.jobs, budget=args.budget, rate=args.rate,
                    trust_proxy=args.trust_proxy, show_correct=not args.no_correct)
    app = create_app(config)

    print(f"derive serve: http://{args.host}:{args.port}/  (submissions in {db})", file=sys.stderr)
    if args.token_file is None:
        print(f"teacher pages: http://{args.host}:{args.port}/teacher?token={token}", file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return EXIT_OK
