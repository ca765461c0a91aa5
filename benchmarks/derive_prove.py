"""How derive + prove time grows with the number of parameters of a layered network.

For each network size (sigmoid layers, quadratic cost) this times, in one fresh
forked child process per network so SymPy's global cache from one network does
not speed up the next:

    build   layered(sizes)
    derive  Derivations(net).cost.derive_all()       every gradient, reverse mode
    prove   prove(net, [nielsen], derivations=ders)  Nielsen's BP1-BP4, every instance
    total   the sum of the three

and reports µs per parameter, the proven instance count and the child's peak RSS.
Beside it, the naive route: sympy.diff(net.substituted(net.cost), p) for every
parameter p (build excluded), in its own child, killed at --naive-timeout seconds
and skipped above --naive-max-params parameters. The last line is the exponent k
of a least-squares fit total ∝ parameters^k over the networks with ≥ 1000
parameters (k near 1 means linear).

Run (`make bench` runs the first):
    python benchmarks/derive_prove.py
    python benchmarks/derive_prove.py --quick
    python benchmarks/derive_prove.py --sizes 784-30-10,100-30-10 --json
The table (or JSON) goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import resource
import sys
import time

import sympy as sp

from derive.derivation import Derivations
from derive.proof.formulas import builtin_sets
from derive.graph.layered import layered
from derive.proof import prove

DEFAULT_SIZES = [[2, 3, 2], [12, 3, 2], [10, 10, 10], [30, 20, 10],
                 [100, 30, 10], [300, 30, 10], [784, 30, 10], [784, 100, 10]]
QUICK_SIZES = DEFAULT_SIZES[:5] + [[784, 30, 10]]  # two above FIT_FROM, so the exponent is fitted
FIT_FROM = 1000  # parameters; smaller networks are dominated by fixed costs
PHASES = ("build", "derive", "prove", "total")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def peak_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def measure(sizes, send) -> None:
    """Child: build, derive and prove one network; send the timings back."""
    t0 = time.perf_counter()
    net = layered(sizes)
    t1 = time.perf_counter()
    ders = Derivations(net)
    ders.cost.derive_all()
    t2 = time.perf_counter()
    summary = prove(net, [builtin_sets()["nielsen"]], derivations=ders).summary()
    t3 = time.perf_counter()
    send.send({"parameters": len(net.parameters), "build": t1 - t0, "derive": t2 - t1,
               "prove": t3 - t2, "total": t3 - t0, "proven": summary["proven"],
               "instances": summary["total"], "peak_mb": peak_mb()})


def naive(sizes, send) -> None:
    """Child: differentiate the fully substituted cost once per parameter."""
    net = layered(sizes)
    send.send("ready")  # the parent's clock starts here, so the cap excludes the build
    start = time.perf_counter()
    cost = net.substituted(net.cost)
    for p in net.parameters:
        sp.diff(cost, p)
    send.send(time.perf_counter() - start)


def in_child(target, sizes, timeout: float | None = None):
    """Run target(sizes, send) in a forked child: (its last message, "ok" | "timeout" | "failed").

    Not daemonic: prove() forks children of its own, which daemonic processes may not.
    """
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=target, args=(sizes, send))
    child.start()
    send.close()
    try:
        message = receive.recv()
        if message == "ready":
            if not receive.poll(timeout):
                return None, "timeout"
            message = receive.recv()
        return message, "ok"
    except EOFError:  # the child died without answering
        return None, "failed"
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receive.close()


def growth_exponent(rows, phase: str) -> float | None:
    """Slope of the least-squares line through (log parameters, log time)."""
    points = [(math.log(r["parameters"]), math.log(r[phase]))
              for r in rows if "total" in r and r["parameters"] >= FIT_FROM and r[phase] > 0]
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else None


def table(rows, naive_timeout: float) -> str:
    header = ["network", "parameters", "build s", "derive s", "prove s", "total s",
              "µs/param", "proven", "peak MB", "naive s"]
    lines = [header]
    for r in rows:
        naive_text = {"ok": f"{r['naive_s']:.3f}" if r["naive_s"] is not None else "?",
                      "timeout": f"> {naive_timeout:g} s", "skipped": "skipped",
                      "failed": "failed"}[r["naive_status"]]
        if "total" not in r:
            lines.append([r["network"], "", "", "", "", "failed", "", "", "", naive_text])
            continue
        lines.append([r["network"], str(r["parameters"]),
                      *(f"{r[p]:.3f}" for p in PHASES),
                      f"{r['us_per_param']:.0f}", f"{r['proven']}/{r['instances']}",
                      f"{r['peak_mb']:.0f}", naive_text])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rule = ["-" * w for w in widths]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(line, widths)))
                     for line in [lines[0], rule, *lines[1:]])


def parse_sizes(text: str) -> list[list[int]]:
    try:
        sizes = [[int(n) for n in item.split("-")] for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 784-30-10,100-30-10, got {text!r}")
    if not sizes or any(len(s) < 2 or min(s) < 1 for s in sizes):
        raise argparse.ArgumentTypeError("each network needs at least two positive layer sizes")
    return sizes


def measure_book_cnn(_sizes, send) -> None:
    """Child: the book's CNN, built, derived and proven with both CNN formula sets."""
    from derive.graph.spec import load

    sets = builtin_sets()
    start = time.perf_counter()
    net = load("book-cnn")
    ders = Derivations(net)
    ders.cost.derive_all()
    report = prove(net, [sets["book-cnn"], sets["cnn"]], derivations=ders)
    summary = report.summary()
    send.send({"parameters": len(net.parameters), "seconds": time.perf_counter() - start,
               "proven": summary["proven"], "instances": summary["total"]})
    send.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="only " + ", ".join(
        "-".join(map(str, s)) for s in QUICK_SIZES))
    parser.add_argument("--sizes", type=parse_sizes, help="networks such as 784-30-10,100-30-10")
    parser.add_argument("--naive-timeout", type=float, default=60.0, metavar="S",
                        help="wall-clock cap on the naive route per network (default 60)")
    parser.add_argument("--naive-max-params", type=int, default=3000, metavar="N",
                        help="skip the naive route above N parameters (default 3000)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    networks = args.sizes or (QUICK_SIZES if args.quick else DEFAULT_SIZES)

    rows = []
    for index, sizes in enumerate(networks, start=1):
        name = "-".join(map(str, sizes))
        log(f"[{index}/{len(networks)}] {name}: derive + prove ...")
        row = {"network": name, **(in_child(measure, sizes)[0] or {})}
        if "total" in row:
            row["us_per_param"] = row["total"] / row["parameters"] * 1e6
            log(f"    {row['total']:.2f} s for {row['parameters']} parameters")
        else:
            log("    the child process died")
        parameters = row.get("parameters", sum(a * b + b for a, b in zip(sizes, sizes[1:])))
        row["naive_s"], row["naive_status"] = None, "skipped"
        if parameters <= args.naive_max_params:
            log(f"    naive route (cap {args.naive_timeout:g} s) ...")
            row["naive_s"], row["naive_status"] = in_child(naive, sizes, args.naive_timeout)
            log(f"    naive: {row['naive_s']:.2f} s" if row["naive_s"] is not None
                else f"    naive: {row['naive_status']}")
        rows.append(row)

    exponents = {phase: growth_exponent(rows, phase) for phase in PHASES}
    log("book-cnn: derive + prove (book-cnn and cnn formula sets) ...")
    cnn = in_child(measure_book_cnn, None)[0] or {}
    if args.json:
        print(json.dumps({"rows": rows, "fit_min_parameters": FIT_FROM, "book_cnn": cnn,
                          "growth_exponent": exponents, "naive_timeout": args.naive_timeout}, indent=2))
        return
    print(table(rows, args.naive_timeout))
    if exponents["total"] is None:
        print(f"\ngrowth exponent: needs at least two networks with >= {FIT_FROM} parameters")
    else:
        parts = ", ".join(f"{p} {exponents[p]:.2f}" for p in PHASES[:3])
        print(f"\ngrowth exponent of total time vs parameters (networks with >= {FIT_FROM} parameters): "
              f"{exponents['total']:.2f}  (1 = linear; {parts})")
    if cnn:
        print(f"book-cnn ({cnn['parameters']} parameters): build + derive + prove {cnn['seconds']:.2f} s, "
              f"{cnn['proven']}/{cnn['instances']} instances proven (target: under 10 s)")


if __name__ == "__main__":
    main()
