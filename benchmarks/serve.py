"""A bounded load test of `derive serve`: many students checking formulas at once, on 127.0.0.1 only.

Starts

    python -m derive serve --assignment examples/class/assignment.toml --host 127.0.0.1 --port PORT
        --db TMP/serve.sqlite --token-file TMP/token --jobs 2 --rate 60 --trust-proxy

as a subprocess, waits for GET /health, and lets --students simulated students (asyncio tasks
sharing one httpx.AsyncClient connection pool) POST /api/check for --seconds (or --requests each).
Each student has a name and an address of its own (X-Forwarded-For: 10.0.<i>.<j>, so the per-client
rate limit tells them apart), thinks 0.2-1 s (seeded) between requests and never sends more than the
server's --rate allows (a client-side mirror of its token bucket), so any 429 is an error. A student
sends a mix:

    right    the questions' reference answers in other spellings (LaTeX and SymPy)  -> 200, proven
    wrong    the common mistakes (sign flipped, a factor missing, a path missing...) -> 200, refuted
    hostile  unparseable LaTeX, __import__('os'), 3000 nested parentheses (over the 5,000-character
             limit), 2000 nested parentheses (under it), a 5,000-character formula, \\input{/etc/passwd}
             -> 200 (any verdict, e.g. unparsed) or 400 (a refused body)

An error is any response outside what its kind expects (any status >= 500, an unexpected 4xx such
as 429), a connection error or a timeout (--timeout, default 40 s; the server itself answers
`undecided` after 19 s with the default budget). A textbook claim with an unexpected verdict
(right but not proven, wrong but not refuted) is counted apart, as is a response that quotes
/etc/passwd. Afterwards the server is stopped (terminate, kill after 10 s; always) and the
`submissions` table of its SQLite file is counted through a read-only connection: it must hold one
row per 200 answer of /api/check (no lost submission).

Prints a table (requests, errors, rows, throughput, p50/p95/max latency overall, for the textbook
claims and for the hostile ones) and the target line: p95 < 2 s for the textbook claims, no errors,
no lost submission.

Run:
    python benchmarks/serve.py                          # 50 students x 60 s
    python benchmarks/serve.py --students 10 --seconds 20
    python benchmarks/serve.py --requests 5 --json
The table (or JSON) goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ASSIGNMENT = ROOT / "examples" / "class" / "assignment.toml"
RATE = 60  # the server's --rate (requests a minute per client)
JOBS = 2
TARGET_P95 = 2.0

# (question, syntax, formula): right answers, spelled otherwise than the references.
RIGHT = [
    ("q1", "latex", r"(out_{o1} - y_1)\, out_{o1} (1 - out_{o1})\, out_{h1}"),
    ("q1", "latex", r"out_{o1}(1-out_{o1})(out_{o1}-y_1)out_{h1}"),
    ("q1", "latex", r"-(y_1 - out_{o1}) \cdot out_{o1} \cdot (1 - out_{o1}) \cdot out_{h1}"),
    ("q1", "latex", r"(out_{o1} - y_{1}) (out_{o1} - out_{o1}^2) out_{h1}"),
    ("q1", "sympy", "(outo1 - y1)*outo1*(1 - outo1)*outh1"),
    ("q2", "latex", r"(out_{o1} - y_1)\, out_{o1} (1 - out_{o1})"),
    ("q2", "latex", r"out_{o1} (1 - out_{o1}) (out_{o1} - y_1)"),
    ("q2", "sympy", "-(y1 - outo1)*outo1*(1 - outo1)"),
    ("q3", "latex", r"((out_{o1} - y_1) out_{o1} (1 - out_{o1}) w_5 + (out_{o2} - y_2) out_{o2} (1 - out_{o2}) w_7)"
                    r" out_{h1} (1 - out_{h1}) x_1"),
    ("q3", "sympy", "((outo1 - y1)*outo1*(1 - outo1)*w5 + (outo2 - y2)*outo2*(1 - outo2)*w7)*outh1*(1 - outh1)*x1"),
    ("q4", "latex", r"out_{o1} - y_1"),
    ("q4", "latex", r"-(y_1 - out_{o1})"),
    ("q4", "sympy", "outo1 - y1"),
]
# The common mistakes.
WRONG = [
    ("q1", "latex", r"(y_1 - out_{o1}) out_{o1} (1 - out_{o1}) out_{h1}"),  # sign flipped
    ("q1", "latex", r"(out_{o1} - y_1) out_{o1} out_{h1}"),  # a factor missing
    ("q1", "latex", r"2 (out_{o1} - y_1) out_{o1} (1 - out_{o1}) out_{h1}"),  # a constant factor
    ("q1", "latex", r"(out_{o1} - y_1) out_{o1} (1 - out_{o1}) out_{h2}"),  # the wrong input
    ("q2", "latex", r"(out_{o1} - y_1)"),  # the derivative of the sigmoid forgotten
    ("q2", "latex", r"(y_1 - out_{o1}) out_{o1} (1 - out_{o1})"),
    ("q3", "latex", r"(out_{o1} - y_1) out_{o1} (1 - out_{o1}) w_5 out_{h1} (1 - out_{h1}) x_1"),  # a path missing
    ("q3", "sympy", "((outo1 - y1)*outo1*(1 - outo1)*w5 + (outo2 - y2)*outo2*(1 - outo2)*w7)*outh1*x1"),
    ("q4", "latex", r"y_1 - out_{o1}"),
    ("q4", "latex", r"(out_{o1} - y_1) out_{o1} (1 - out_{o1})"),
]
LONG = " + ".join([r"out_{o1}"] * 450)  # a readable sum: 450 out_{o1}
LONG = LONG.replace(" + ", " " * (5000 - len(LONG) + 1) + "+ ", 1)  # padded to 5,000 characters exactly
assert len(LONG) == 5000
# name -> (question, syntax, formula)
HOSTILE = {
    "unparseable": ("q1", "latex", r"\frac{out_{o1}}{"),
    "unbalanced": ("q2", "latex", r"(out_{o1} - y_1 \cdot"),
    "import-sympy": ("q4", "sympy", "__import__('os')"),
    "import-latex": ("q4", "latex", "__import__('os')"),
    "nested-3000": ("q1", "latex", "(" * 3000 + "x" + ")" * 3000),  # 6,001 characters: over the limit
    "nested-2000": ("q1", "latex", "(" * 2000 + "out_{o1}" + ")" * 2000),  # under it
    "long-5000": ("q4", "latex", LONG),  # 450 out_{o1}: refuted
    "input-passwd": ("q4", "latex", r"\input{/etc/passwd}"),
}
MIX = (("right", 0.65), ("wrong", 0.27), ("hostile", 0.08))


@dataclass
class Sample:
    kind: str  # right, wrong, hostile
    label: str
    status: int | None  # None: a connection error or a timeout
    latency: float
    verdict: str | None = None
    error: str | None = None  # why the request counts as an error
    odd_verdict: bool = False
    leaked: bool = False


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp: Path, port: int) -> tuple[subprocess.Popen, Path]:
    token = tmp / "teacher.token"
    token.write_text("load-test-" + os.urandom(12).hex() + "\n")
    db = tmp / "serve.sqlite"
    log = open(tmp / "server.log", "wb")
    command = [sys.executable, "-m", "derive", "serve", "--assignment", str(ASSIGNMENT), "--host", "127.0.0.1",
               "--port", str(port), "--db", str(db), "--token-file", str(token), "--jobs", str(JOBS),
               "--rate", str(RATE), "--trust-proxy"]
    process = subprocess.Popen(command, cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return process, db


def wait_health(process: subprocess.Popen, base: str, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before answering /health")
        try:
            if httpx.get(base + "/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer /health within {limit:g} s")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def pick(rng: random.Random) -> tuple[str, str, tuple[str, str, str]]:
    r, total = rng.random(), 0.0
    for kind, share in MIX:
        total += share
        if r < total:
            break
    if kind == "hostile":
        label = rng.choice(sorted(HOSTILE))
        return kind, label, HOSTILE[label]
    item = rng.choice(RIGHT if kind == "right" else WRONG)
    return kind, f"{kind}-{item[0]}", item


def judge(sample: Sample, body: dict | None) -> None:
    """Set the sample's error (if its status is not what its kind expects), odd verdict and leak flags."""
    status = sample.status
    if sample.kind in ("right", "wrong"):
        if status != 200:
            sample.error = f"status {status}"
        elif sample.verdict != ("proven" if sample.kind == "right" else "refuted"):
            sample.odd_verdict = True
    elif status not in (200, 400):
        sample.error = f"status {status}"
    if body is not None and "root:" in json.dumps(body):
        sample.leaked = True


async def student(i: int, client: httpx.AsyncClient, run: Run, stop_at: float, requests: int | None,
                  seed: int, timeout: float) -> None:
    rng = random.Random(seed * 1_000_003 + i)
    name = f"student{i:03d}"
    headers = {"X-Forwarded-For": f"10.0.{i // 250}.{i % 250 + 1}"}
    tokens, last = float(RATE), time.monotonic()  # a mirror of the server's bucket for this client
    await asyncio.sleep(rng.uniform(0, 1.0))  # the class does not start in the same millisecond
    sent = 0
    while (requests is None and time.monotonic() < stop_at) or (requests is not None and sent < requests):
        now = time.monotonic()
        tokens = min(float(RATE), tokens + (now - last) * RATE / 60.0)
        last = now
        if tokens < 1.5:  # keep a margin: the server's clock starts a little later than ours
            await asyncio.sleep((1.5 - tokens) * 60.0 / RATE)
            continue
        tokens -= 1.0
        kind, label, (question, syntax, formula) = pick(rng)
        payload = {"question": question, "student": name, "formula": formula, "syntax": syntax}
        start = time.perf_counter()
        body = None
        try:
            response = await client.post("/api/check", json=payload, headers=headers, timeout=timeout)
            latency = time.perf_counter() - start
            sample = Sample(kind, label, response.status_code, latency)
            try:
                body = response.json()
            except ValueError:
                body = None
            if response.status_code == 200 and isinstance(body, dict):
                sample.verdict = body.get("verdict")
            judge(sample, body)
        except httpx.TimeoutException:
            sample = Sample(kind, label, None, time.perf_counter() - start, error="timeout")
        except httpx.HTTPError as exc:
            sample = Sample(kind, label, None, time.perf_counter() - start, error=type(exc).__name__)
        run.samples.append(sample)
        sent += 1
        await asyncio.sleep(rng.uniform(0.2, 1.0))


async def load(base: str, students: int, seconds: float, requests: int | None, seed: int, timeout: float) -> Run:
    run = Run()
    limits = httpx.Limits(max_connections=students, max_keepalive_connections=students)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as client:
        run.started = time.monotonic()
        stop_at = run.started + seconds
        await asyncio.gather(*(student(i, client, run, stop_at, requests, seed, timeout) for i in range(students)))
        run.ended = time.monotonic()
    return run


def count_rows(db: Path) -> int:
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return connection.execute("SELECT COUNT(*) FROM submissions").fetchone()[0]
    finally:
        connection.close()


def quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def stats(samples: list[Sample]) -> dict:
    latencies = [s.latency for s in samples]
    return {"requests": len(samples), "errors": sum(1 for s in samples if s.error),
            "p50": quantile(latencies, 0.50), "p95": quantile(latencies, 0.95),
            "max": max(latencies) if latencies else None}


def summarize(run: Run, rows: int, students: int, seconds: float, requests: int | None) -> dict:
    samples = run.samples
    wall = max(run.ended - run.started, 1e-9)
    ok_checks = sum(1 for s in samples if s.status == 200)
    textbook = [s for s in samples if s.kind in ("right", "wrong")]
    groups = {"all": stats(samples), "textbook": stats(textbook),
              "right": stats([s for s in samples if s.kind == "right"]),
              "wrong": stats([s for s in samples if s.kind == "wrong"]),
              "hostile": stats([s for s in samples if s.kind == "hostile"])}
    statuses: dict[str, int] = {}
    for s in samples:
        key = str(s.status) if s.status is not None else (s.error or "none")
        statuses[key] = statuses.get(key, 0) + 1
    verdicts: dict[str, dict[str, int]] = {}
    for s in samples:
        by = verdicts.setdefault(s.label, {})
        key = s.verdict or (str(s.status) if s.status is not None else s.error or "none")
        by[key] = by.get(key, 0) + 1
    errors = [f"{s.label}: {s.error}" for s in samples if s.error]
    p95 = groups["textbook"]["p95"]
    targets = {"textbook p95 < 2 s": p95 is not None and p95 < TARGET_P95,
               "no errors": not errors,
               "no lost submission": rows == ok_checks}
    return {"students": students, "seconds": seconds, "requests_each": requests, "wall_seconds": round(wall, 2),
            "requests": len(samples), "errors": len(errors), "error_examples": errors[:10],
            "ok_checks": ok_checks, "rows": rows, "throughput": len(samples) / wall, "statuses": statuses,
            "odd_verdicts": sum(1 for s in samples if s.odd_verdict), "leaks": sum(1 for s in samples if s.leaked),
            "latency": groups, "verdicts": verdicts, "targets": targets}


def fmt(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.3f}"


def table(report: dict) -> str:
    mark = {True: "✓", False: "✗"}
    lines = [f"derive serve load test: {report['students']} students, "
             + (f"{report['requests_each']} requests each" if report["requests_each"] else
                f"{report['seconds']:g} s") + f", --jobs {JOBS}, --rate {RATE}",
             "",
             f"  requests          {report['requests']}  (statuses: "
             + ", ".join(f"{k}: {v}" for k, v in sorted(report["statuses"].items())) + ")",
             f"  errors            {report['errors']}",
             f"  200 checks        {report['ok_checks']}",
             f"  rows in SQLite    {report['rows']}",
             f"  throughput        {report['throughput']:.2f} requests/s over {report['wall_seconds']:.1f} s",
             f"  odd verdicts      {report['odd_verdicts']}  (textbook claims: right not proven, wrong not refuted)",
             f"  /etc/passwd leaks {report['leaks']}",
             "",
             f"  {'latency (s)':<12} {'requests':>8} {'errors':>7} {'p50':>8} {'p95':>8} {'max':>8}"]
    for name in ("all", "textbook", "right", "wrong", "hostile"):
        g = report["latency"][name]
        lines.append(f"  {name:<12} {g['requests']:>8} {g['errors']:>7} {fmt(g['p50']):>8} {fmt(g['p95']):>8} "
                     f"{fmt(g['max']):>8}")
    lines.append("")
    lines.append("  verdicts by kind: " + "; ".join(
        f"{label} " + ", ".join(f"{k} {v}" for k, v in sorted(by.items()))
        for label, by in sorted(report["verdicts"].items())))
    if report["error_examples"]:
        lines.append("  errors, e.g.: " + "; ".join(report["error_examples"]))
    lines.append("")
    lines.append("target: " + "   ".join(f"{name} {mark[ok]}" for name, ok in report["targets"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=50, help="concurrent students (default 50)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long they submit (default 60)")
    parser.add_argument("--requests", type=int, help="requests per student instead of --seconds")
    parser.add_argument("--seed", type=int, default=1, help="the random seed (default 1)")
    parser.add_argument("--timeout", type=float, default=40.0, help="client timeout per request (default 40 s)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    if not 1 <= args.students <= 62_500 or args.seconds <= 0 or (args.requests is not None and args.requests < 1):
        parser.error("--students from 1 to 62500, --seconds > 0, --requests >= 1")

    with tempfile.TemporaryDirectory(prefix="derive-serve-bench-") as name:
        tmp = Path(name)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        process, db = start_server(tmp, port)
        try:
            wait_health(process, base)
            print(f"server up on {base}; {args.students} students for "
                  + (f"{args.requests} requests each" if args.requests else f"{args.seconds:g} s"), file=sys.stderr)
            run = asyncio.run(load(base, args.students, args.seconds, args.requests, args.seed, args.timeout))
        except BaseException:
            sys.stderr.write((tmp / "server.log").read_text(errors="replace")[-4000:])
            raise
        finally:
            stop_server(process)
        rows = count_rows(db)
        log = (tmp / "server.log").read_text(errors="replace")
    report = summarize(run, rows, args.students, args.seconds, args.requests)
    report["server_log_tail"] = log[-2000:]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(table(report))
        tail = [line for line in log.splitlines() if "Traceback" in line or "Error" in line]
        if tail:
            print(f"\nserver log: {len(tail)} lines with Traceback/Error, e.g. {tail[0][:200]}")
    return 0 if all(report["targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
