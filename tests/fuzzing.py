"""Fuzzing harness for tests/test_fuzz.py: a fork-server that runs `derive` cases under limits.

Spawning `python -m derive` costs about 1.4 s of imports per case; here one
long-lived server process imports derive (SymPy, NumPy, Jinja, …) once and
forks a child per case. The child

- starts a new session (its own process group, killed as a whole afterwards),
- sets resource limits: address space (RLIMIT_AS), CPU seconds, file size, no core,
- changes into the case's output directory, with TMPDIR and HOME inside the case,
- redirects stdin from /dev/null and stdout/stderr to files,
- calls ``derive.cli.main(argv)`` and leaves with ``os._exit(code)``.

The server waits for the child with a wall-clock deadline (pidfd + select), kills
the child's process group at the deadline, and answers with the exit code or
signal, the wall time, the peak RSS and whether processes of the group outlived
the child. Besides, the child records for triage (in the case's harness
directory, which is not part of the sandbox): the traceback of any exception
that leaves a command (`derive` itself prints one line for those) and, shortly
before the deadline, a faulthandler dump of where it hangs.

Script modes:

    python tests/fuzzing.py --serve            the server (started by FuzzServer)
    python tests/fuzzing.py --summary [FILE]   print the per-surface table that
                                               test_fuzz.py wrote (default: the
                                               last pytest run's fuzz-summary.json)
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import resource
import select
import signal
import stat
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

MEMORY_LIMIT = 3 * 1024**3  # RLIMIT_AS of each case
FILE_LIMIT = 256 * 1024**2  # RLIMIT_FSIZE: no case may write a larger file
EXIT_CODES = {0, 1, 2}


# ---------------------------------------------------------------------------
# The server (runs in its own process)
# ---------------------------------------------------------------------------


def _preload() -> None:
    """Import everything a command may import, once, before any fork."""
    import pkgutil

    import derive
    import derive.cli  # noqa: F401

    # every module, subpackages' too (derive.claims.check, derive.train.training, …): bytecode is not
    # written (PYTHONDONTWRITEBYTECODE), so a module first imported in a child is compiled in every case
    for module in pkgutil.walk_packages(derive.__path__, "derive.", onerror=lambda name: None):
        if module.name != "derive.__main__":  # that one runs the command line
            try:  # a module that fails to import fails the cases that need it, not the server
                __import__(module.name)
            except Exception as exc:
                print(f"fuzz server: cannot preload {module.name}: {exc!r}", file=sys.stderr)
    import jinja2.sandbox  # noqa: F401
    import numpy  # noqa: F401
    import sympy  # noqa: F401
    import tqdm  # noqa: F401

    try:  # the digits data set
        import sklearn.datasets  # noqa: F401
        import sklearn.model_selection  # noqa: F401
    except ImportError:
        pass


def _become_subreaper() -> None:
    """Orphaned grandchildren of a case come to us, so that we can see and reap them."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_CHILD_SUBREAPER = 36
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except Exception:  # pragma: no cover - not Linux
        pass


def _reap_all() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _child(request: dict, proto_fds: tuple[int, int]) -> None:
    """In the forked child: limits, sandbox, redirections, then derive's main. Never returns."""
    code = 70
    try:
        for fd in proto_fds:
            os.close(fd)
        os.setsid()
        cpu = int(request["cpu"])
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
        resource.setrlimit(resource.RLIMIT_AS, (request["memory"], request["memory"]))
        resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        for key, value in request["env"].items():
            os.environ[key] = value
        import tempfile

        tempfile.tempdir = None  # TMPDIR is read again
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        for fd in (null, out, err):
            os.close(fd)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8")
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                      errors="backslashreplace", line_buffering=True)
        os.chdir(request["cwd"])
        sys.argv = ["derive", *request["argv"]]

        import faulthandler

        diagnosis = open(request["diagnosis"], "w", encoding="utf-8")  # noqa: SIM115
        faulthandler.dump_traceback_later(max(1.0, request["timeout"] - 1.5), exit=False, file=diagnosis)
        code = _run_derive(request["argv"], diagnosis)
    except SystemExit as exc:
        code = exc.code
        if code is None:
            code = 0
        elif not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
    except BaseException:  # what Python would do for an uncaught exception: traceback, exit 1
        import traceback

        try:
            traceback.print_exc()
        except BaseException:
            pass
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        os._exit(code & 0xFF if isinstance(code, int) else 1)


def _run_derive(argv: list[str], diagnosis) -> int:
    """derive.cli.main, with every command wrapped to record the traceback of an escaping exception."""
    import traceback

    import derive.cli as cli

    original = cli.build_parser

    def recording(run):
        def wrapper(args):
            try:
                return run(args)
            except BaseException as exc:
                diagnosis.write(f"EXCEPTION {type(exc).__module__}.{type(exc).__qualname__}\n")
                diagnosis.write("".join(traceback.format_exception(exc)))
                diagnosis.flush()
                raise

        return wrapper

    def build_parser():
        parser = original()
        for action in parser._subparsers._group_actions:  # the subcommands
            for sub in action.choices.values():
                if "run" in sub._defaults:
                    sub._defaults["run"] = recording(sub._defaults["run"])
        return parser

    cli.build_parser = build_parser
    return cli.main(argv)


def serve() -> None:
    """Answer one JSON request per line on stdin with one JSON line on stdout."""
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)  # nothing of ours (or a library's) may write into the protocol
    os.close(null)
    _preload()
    _become_subreaper()
    reader = os.fdopen(proto_in, "r", encoding="utf-8")
    writer = os.fdopen(proto_out, "w", encoding="utf-8")
    writer.write(json.dumps({"ready": True, "pid": os.getpid()}) + "\n")
    writer.flush()
    for line in reader:
        request = json.loads(line)
        sys.stderr.flush()
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(request, (proto_in, proto_out))
        timed_out = False
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pidfd = None
        if pidfd is not None:
            ready, _, _ = select.select([pidfd], [], [], request["timeout"])
            os.close(pidfd)
            if not ready:
                timed_out = True
        else:  # pragma: no cover - old kernels
            while time.monotonic() - start < request["timeout"]:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
                time.sleep(0.01)
            else:
                timed_out = True
        if timed_out:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, status, usage = os.wait4(pid, 0)
        wall = time.monotonic() - start
        stray = False
        try:
            os.killpg(pid, 0)
            stray = True
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        time.sleep(0.01 if stray else 0)
        _reap_all()
        answer = {
            "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
            "wall": wall,
            "cpu": usage.ru_utime + usage.ru_stime,
            "maxrss_kib": usage.ru_maxrss,
            "timed_out": timed_out,
            "stray": stray,
        }
        writer.write(json.dumps(answer) + "\n")
        writer.flush()


# ---------------------------------------------------------------------------
# The client (in the pytest process)
# ---------------------------------------------------------------------------


class FuzzServer:
    """The fork-server, started once per test session."""

    def __init__(self) -> None:
        env = dict(os.environ)
        env.update(
            PYTHONHASHSEED="0", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
            PYTHONDONTWRITEBYTECODE="1", LC_ALL="C.UTF-8",
        )
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=str(REPO),
            text=True, encoding="utf-8", bufsize=1,
        )
        hello = self.process.stdout.readline()
        if not hello:
            raise RuntimeError("the fuzz server did not start")
        self.pid = json.loads(hello)["pid"]

    def run(self, request: dict) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the fuzz server died")
        return json.loads(line)

    def close(self) -> None:
        try:
            self.process.stdin.close()
            self.process.wait(timeout=10)
        except Exception:
            self.process.kill()


# ---------------------------------------------------------------------------
# Cases: a sandbox, a run, and the checks
# ---------------------------------------------------------------------------


@dataclass
class Case:
    """One run of `derive`: its arguments and the files it gets.

    `files` maps a name in the case's input directory to bytes (or to the
    special values "fifo", "dir", or ("symlink", target)); `{in}` and `{out}` in
    an argument stand for the input and output directories (the run's working
    directory is the output directory).
    """

    surface: str
    argv: list[str]
    files: dict = field(default_factory=dict)
    note: str = ""
    timeout: float = 20.0
    expect_outputs: list[str] = field(default_factory=list)  # output files to check when present


@dataclass
class Outcome:
    case: Case
    argv: list[str]
    directory: Path
    code: int | None
    signal: int | None
    wall: float
    maxrss_kib: int
    timed_out: bool
    stray: bool
    stdout: str
    stderr: str
    diagnosis: str
    problems: list[str]

    @property
    def label(self) -> str:
        if self.timed_out:
            return "timeout"
        if self.signal is not None:
            return f"signal {self.signal}"
        return f"exit {self.code}"

    def where(self) -> str:
        """The exception and innermost derive frame (file:line) the diagnosis records, if any."""
        return exception_site(self.diagnosis)

    def reproducer(self, limit: int = 1500) -> str:
        lines = [f"[{self.case.surface}] {self.label} in {self.wall:.1f} s: {'; '.join(self.problems)}"]
        if self.case.note:
            lines.append(f"  case: {self.case.note}")
        lines.append(f"  cd {self.directory / 'out'} && derive {' '.join(_quote(a) for a in self.argv)}")
        for name, content in self.case.files.items():
            lines.append(f"  file in/{name}: {_describe(content, limit)}")
        site = self.where()
        if site:
            lines.append(f"  raised: {site}")
        tail = self.stderr.strip().splitlines()[-3:]
        if tail:
            lines.append("  stderr: " + " | ".join(t[:300] for t in tail))
        return "\n".join(lines)


def _quote(arg: str) -> str:
    import shlex

    if len(arg) > 120:
        return shlex.quote(arg[:60]) + f"…({len(arg)} chars)"
    return shlex.quote(arg)


def _describe(content, limit: int) -> str:
    if isinstance(content, (bytes, bytearray)):
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            return f"{len(content)} bytes (not UTF-8): {content[:200]!r}"
        if len(text) > limit:
            return f"{len(content)} bytes: {text[:limit]!r}…"
        return repr(text)
    return repr(content)


def exception_site(diagnosis: str, with_message: bool = True) -> str:
    """'ExcType: message at derive/x.py:123 (f)' from a recorded traceback, or where a faulthandler dump hangs."""
    if not diagnosis:
        return ""
    import re

    lines = diagnosis.splitlines()
    kind = next((line.split(" ", 1)[1] for line in lines if line.startswith("EXCEPTION ")), "")
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)', diagnosis)
    if kind:
        message = kind
        for line in reversed(lines):
            if line and not line.startswith(" ") and ":" in line and not line.startswith("Traceback"):
                message = line.strip()
                break
        ours = [f for f in frames if "/derive/" in f[0] and "/tests/" not in f[0]]
        last = frames[-1] if frames else None
        site = ""
        if ours:
            f = ours[-1]
            site = f" at {_short(f[0])}:{f[1]} ({f[2]})"
        if last and (not ours or last != ours[-1]):
            site += f", raised in {_short(last[0])}:{last[1]} ({last[2]})"
        return f"{message[:300] if with_message else kind}{site}"
    # a faulthandler dump: "Thread 0x… (most recent call first):\n  File "…", line N in f"
    blocks = [b for b in re.split(r"\n(?=(?:Current thread|Thread) 0x)", diagnosis) if "/derive/" in b] or [diagnosis]
    dumped = re.findall(r'File "([^"]+)", line (\d+) in (\S+)', blocks[0])
    if dumped:
        ours = [f for f in dumped if "/derive/" in f[0] and "/tests/" not in f[0]]
        top = dumped[0]
        text = f"hang: innermost {_short(top[0])}:{top[1]} ({top[2]})"
        if ours:
            text += f", in derive at {_short(ours[0][0])}:{ours[0][1]} ({ours[0][2]})"
        return text
    return ""


def _short(path: str) -> str:
    for marker in ("/derive/", "/site-packages/", "/lib/python"):
        if marker in path:
            head, _, tail = path.rpartition(marker)
            return marker.strip("/") + "/" + tail if marker == "/derive/" else tail
    return path


def _snapshot(root: Path, skip: set[str]) -> dict:
    """path → (kind, inode, size, mtime_ns, mode) below root, not descending into `skip` names at the top."""
    result = {}

    def walk(directory: Path, top: bool) -> None:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return
        for entry in entries:
            if top and entry.name in skip:
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            result[entry.path] = (stat.S_IFMT(info.st_mode), info.st_ino, info.st_size, info.st_mtime_ns, info.st_mode)
            if entry.is_dir(follow_symlinks=False):
                walk(Path(entry.path), False)

    walk(root, True)
    return result


def _finite_json(text: str):
    def reject(constant):
        raise ValueError(f"non-finite JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


class Harness:
    """Runs cases through the server in sandboxes under `root`, and checks each one."""

    def __init__(self, server: FuzzServer, root: Path):
        self.server = server
        self.root = root
        self.count = 0
        self.tally: dict[str, dict[str, int]] = {}
        self.seconds: dict[str, float] = {}
        self.failures: dict[str, list[Outcome]] = {}

    def sandbox(self, case: Case) -> Path:
        self.count += 1
        directory = self.root / f"case-{self.count:04d}-{case.surface}"
        for sub in ("in", "out", "tmp", "home", "harness"):
            (directory / sub).mkdir(parents=True)
        for name, content in case.files.items():
            path = directory / "in" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if content == "fifo":
                os.mkfifo(path)
            elif content == "dir":
                path.mkdir()
            elif isinstance(content, tuple) and content[0] == "symlink":
                os.symlink(content[1], path)
            else:
                path.write_bytes(content)
        return directory

    def run(self, case: Case) -> Outcome:
        directory = self.sandbox(case)
        inputs, output = directory / "in", directory / "out"
        argv = [a.replace("{in}", str(inputs)).replace("{out}", str(output)) for a in case.argv]
        before = _snapshot(directory, {"out", "harness"})
        request = {
            "argv": argv,
            "cwd": str(output),
            "timeout": case.timeout,
            "cpu": int(case.timeout) + 10,
            "memory": MEMORY_LIMIT,
            "env": {"TMPDIR": str(directory / "tmp"), "HOME": str(directory / "home"), "COLUMNS": "100"},
            "stdout": str(directory / "harness" / "stdout"),
            "stderr": str(directory / "harness" / "stderr"),
            "diagnosis": str(directory / "harness" / "diagnosis"),
        }
        answer = self.server.run(request)
        after = _snapshot(directory, {"out", "harness"})
        read = lambda name: (directory / "harness" / name).read_text(encoding="utf-8", errors="replace")  # noqa: E731
        stdout, stderr, diagnosis = read("stdout"), read("stderr"), read("diagnosis")
        outcome = Outcome(
            case, argv, directory, answer["code"], answer["signal"], answer["wall"], answer["maxrss_kib"],
            answer["timed_out"], answer["stray"], stdout, stderr, diagnosis, [],
        )
        outcome.problems = self.check(outcome, before, after)
        tally = self.tally.setdefault(case.surface, {})
        key = outcome.label if not outcome.problems or outcome.label != "exit 0" else "exit 0"
        tally[key] = tally.get(key, 0) + 1
        tally["cases"] = tally.get("cases", 0) + 1
        if outcome.problems:
            tally["failed"] = tally.get("failed", 0) + 1
            self.failures.setdefault(case.surface, []).append(outcome)
        self.seconds[case.surface] = self.seconds.get(case.surface, 0.0) + outcome.wall
        return outcome

    def check(self, o: Outcome, before: dict, after: dict) -> list[str]:
        problems = []
        if o.timed_out:
            problems.append(f"no exit within {o.case.timeout:g} s (killed)")
        elif o.signal is not None:
            name = signal.Signals(o.signal).name if o.signal in signal.Signals._value2member_map_ else o.signal
            problems.append(f"killed by {name}")
        elif o.code not in EXIT_CODES:
            problems.append(f"exit code {o.code}")
        if "Traceback" in o.stderr:
            problems.append("traceback on stderr")
        if "internal error" in o.stderr:
            problems.append("'internal error' on stderr")
        if o.stray:
            problems.append("processes of the run outlived it")
        if not o.timed_out and o.wall > o.case.timeout:
            problems.append(f"took {o.wall:.1f} s")
        if "--json" in o.argv and o.code in (0, 1):
            try:
                _finite_json(o.stdout)
            except ValueError as exc:
                problems.append(f"--json output is not one complete finite JSON value ({str(exc)[:120]})")
        if "--json" in o.argv and o.code == 2 and o.stdout.strip():
            try:
                _finite_json(o.stdout)
            except ValueError:
                problems.append("exit 2 with partial --json output")
        tmp = str(o.directory / "tmp")
        changed = sorted(
            p for p in set(before) | set(after)
            if before.get(p) != after.get(p) and p != tmp
        )
        leftover_tmp = [p for p in after if p.startswith(tmp + os.sep)]
        allowed = self.output_paths(o)
        touched = [p for p in changed if p not in leftover_tmp
                   and not (p not in before and any(p == a or p.startswith(a + os.sep) for a in allowed))]
        if touched:
            problems.append("touched outside the output directory: " + ", ".join(
                str(Path(p).relative_to(o.directory)) for p in touched[:5]))
        if leftover_tmp:
            problems.append("left in TMPDIR: " + ", ".join(Path(p).name for p in leftover_tmp[:5]))
        problems += self.check_outputs(o)
        return problems

    @staticmethod
    def output_paths(o: Outcome) -> list[str]:
        """The paths the arguments name as outputs (and a report's .tex beside its .pdf)."""
        paths = []
        for i, arg in enumerate(o.argv[:-1]):
            if arg in ("-o", "--output", "--save", "--report"):
                path = Path(o.argv[i + 1])
                if not path.is_absolute():
                    path = o.directory / "out" / path
                path = Path(os.path.normpath(path))
                paths += [str(path), str(path.with_suffix(".tex")), str(path.with_suffix(".pdf"))]
        return paths

    def check_outputs(self, o: Outcome) -> list[str]:
        problems = []
        out = o.directory / "out"
        for path in out.rglob("*"):
            if path.name.endswith(".partial") or path.name.startswith("derive-report-"):
                problems.append(f"temporary file left in the output directory: {path.name}")
            if path.is_file() and path.suffix == ".pdf":
                data = path.read_bytes()
                if not data.startswith(b"%PDF-") or b"%%EOF" not in data[-1024:]:
                    problems.append(f"incomplete PDF {path.name}")
            if path.is_file() and path.suffix == ".npz":
                try:
                    with zipfile.ZipFile(path) as archive:
                        if archive.testzip() is not None:
                            raise zipfile.BadZipFile("bad member")
                except (zipfile.BadZipFile, OSError) as exc:
                    problems.append(f"incomplete .npz {path.name} ({exc})")
            if path.is_file() and path.suffix == ".tex" and "--template" not in o.argv:
                text = path.read_text(encoding="utf-8", errors="replace")
                if r"\end{document}" not in text:
                    problems.append(f"incomplete .tex {path.name}")
        for name in o.case.expect_outputs:
            path = out / name
            if o.code == 0 and not path.exists() and not any(out.rglob(Path(name).name)):
                problems.append(f"exit 0 but no {name}")
        return problems

    def summary(self) -> dict:
        return {
            "surfaces": {
                surface: {"counts": counts, "seconds": round(self.seconds.get(surface, 0.0), 2)}
                for surface, counts in self.tally.items()
            },
            "failures": {
                surface: [
                    {"argv": o.argv, "label": o.label, "problems": o.problems, "where": o.where(),
                     "directory": str(o.directory), "note": o.case.note}
                    for o in outcomes
                ]
                for surface, outcomes in self.failures.items()
            },
        }


def failure_report(outcomes: list[Outcome], limit: int = 12) -> str:
    """The failures of one surface, grouped by where they are raised (or by their problem), one reproducer each."""
    groups: dict[str, list[Outcome]] = {}
    for o in outcomes:
        key = exception_site(o.diagnosis, with_message=False) if o.code == 3 or o.timed_out or "Traceback" in o.stderr \
            else ""
        key = key or "; ".join(sorted({p.split(":")[0].split("(")[0].strip() for p in o.problems}))
        groups.setdefault(key, []).append(o)
    text = [f"{len(outcomes)} failing case(s) in {len(groups)} group(s):"]
    for key, members in list(groups.items())[:limit]:
        smallest = min(members, key=lambda o: sum(len(c) if isinstance(c, (bytes, str)) else 10
                                                  for c in o.case.files.values()) + len(" ".join(o.argv)))
        text.append(f"\n== {len(members)} x {key}")
        text.append(smallest.reproducer())
    return "\n".join(text)


# ---------------------------------------------------------------------------
# Script mode: the summary table
# ---------------------------------------------------------------------------


def print_summary(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    surfaces = data["surfaces"]
    columns = ["cases", "exit 0", "exit 1", "exit 2", "other", "failed", "seconds"]
    rows = []
    for surface, info in surfaces.items():
        counts = info["counts"]
        other = sum(v for k, v in counts.items() if k not in ("cases", "exit 0", "exit 1", "exit 2", "failed"))
        rows.append([surface, counts.get("cases", 0), counts.get("exit 0", 0), counts.get("exit 1", 0),
                     counts.get("exit 2", 0), other, counts.get("failed", 0), f"{info['seconds']:.1f}"])
    total = ["total"] + [sum(int(r[i]) for r in rows) for i in range(1, 7)] + [
        f"{sum(float(r[7]) for r in rows):.1f}"]
    rows.append(total)
    width = max(len(str(r[0])) for r in rows + [["surface"]])
    print(f"{'surface':<{width}}  " + "  ".join(f"{c:>7}" for c in columns))
    for r in rows:
        print(f"{r[0]:<{width}}  " + "  ".join(f"{str(v):>7}" for v in r[1:]))
    failures = data.get("failures", {})
    if failures:
        print()
        for surface, items in failures.items():
            for item in items:
                print(f"[{surface}] {item['label']}: {'; '.join(item['problems'])}")
                print(f"    derive {' '.join(item['argv'])[:300]}")
                if item.get("where"):
                    print(f"    raised: {item['where']}")


def default_summary_path() -> Path:
    import getpass
    import tempfile

    base = Path(tempfile.gettempdir()) / f"pytest-of-{getpass.getuser()}" / "pytest-current"
    return base / "fuzz-summary.json"


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve()
    elif sys.argv[1:2] == ["--summary"]:
        print_summary(Path(sys.argv[2]) if len(sys.argv) > 2 else default_summary_path())
    else:
        print(__doc__)
        sys.exit(2)
