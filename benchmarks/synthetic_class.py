"""A realistic synthetic class for an assignment on Mazur's 2-2-2 network (the built-in two-two-two).

    make_class(students, seed, questions=None) -> [(student, question, answer, syntax), ...]
    write_csv(rows, path)                      -> the CSV `derive grade` reads

`questions` is a list of (question id, wrt): the quantity each question asks ∂E/∂ of, one of w1..w8,
b1, b2, neth1, neth2, outh1, outh2, neto1, neto2, outo1, outo2 (default: the four questions of
examples/class/assignment.toml; `questions_of(path)` reads them from an assignment file).

Each student has an ability (uniform from 0.6 to 0.98): the chance of answering a question right.
A right answer is spelled one of many ways: LaTeX (out_{o1}, y_1, w_5, x_1) with its spacing
varied, factors joined by juxtaposition, `\\,` or `\\cdot`, factors in any order, `\\left(…\\right)`,
(y_1 - out_{o1}) with a minus in front, or SymPy syntax (about one answer in eight, syntax column
"sympy"). A wrong answer is one of (shares of the wrong answers):

    65 %  a common mistake: the sign flipped (y - out for out - y), the σ' factor missing,
          a path missing (a term of the sum over the output units, where there is a sum),
          a constant factor 2 (the 1/2 of E forgotten)
    20 %  the long tail: k × the right answer with k from 3 to 99,999 (nearly every one
          unique), or one weight or unit replaced by another at random
     7 %  no answer (an empty cell)
     8 %  unreadable: a truncated formula, unbalanced brackets, words

Run as a script to write a class as CSV:

    python benchmarks/synthetic_class.py --students 40 --seed 7 -o examples/class/answers.csv
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tomllib
from pathlib import Path

DEFAULT_QUESTIONS = [("q1", "w5"), ("q2", "neto1"), ("q3", "w1"), ("q4", "outo1")]

# Mazur's wiring: output weight -> (output unit, hidden unit); hidden weight -> (hidden unit, input)
OUTPUT_WEIGHTS = {"w5": ("o1", "h1"), "w6": ("o1", "h2"), "w7": ("o2", "h1"), "w8": ("o2", "h2")}
HIDDEN_WEIGHTS = {"w1": ("h1", "x1"), "w2": ("h1", "x2"), "w3": ("h2", "x1"), "w4": ("h2", "x2")}
WEIGHT = {(o, h): w for w, (o, h) in OUTPUT_WEIGHTS.items()}
OUTPUTS, HIDDEN = ("o1", "o2"), ("h1", "h2")

FIRST = ["Ada", "Ben", "Chen", "Dana", "Emil", "Farah", "Goran", "Hana", "Ivan", "Jia", "Kofi", "Lena", "Mateo",
         "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Vera", "Wei", "Ximena", "Yusuf", "Zoe"]
LAST = ["Abe", "Berg", "Costa", "Diaz", "Eze", "Fischer", "Garcia", "Huang", "Ito", "Jensen", "Kim", "Lopez",
        "Moreau", "Nowak", "Okafor", "Patel", "Rossi", "Silva", "Tanaka", "Urban", "Varga", "Wang", "Yilmaz", "Zhou"]

UNREADABLE = ["idk", "see my paper", "?", r"\frac{\partial E}{", "(out_{o1} - y_1", "out_{o1} - y_1)",
              r"\sigma'(", "delta * ", "(outo1 - y1) ** ", r"\cdot", "out_{o1} -- - y_1 ^"]


# ---- answers as small trees: ("prod", [...]), ("sum", [...]), ("atom", kind, name), ("const", text)

def _atom(kind: str, name: str):
    return ("atom", kind, name)


def _delta_o(o: str):
    return ("prod", [_atom("err", o), _atom("sig", o)])


def _to_hidden(h: str):
    """∂E/∂out_h: the sum over the output units h feeds."""
    return ("sum", [("prod", [_atom("err", o), _atom("sig", o), _atom("w", WEIGHT[(o, h)])]) for o in OUTPUTS])


def right_answer(wrt: str):
    """∂E/∂wrt on the 2-2-2 network, as a tree."""
    if wrt in OUTPUT_WEIGHTS:
        o, h = OUTPUT_WEIGHTS[wrt]
        return ("prod", [_atom("err", o), _atom("sig", o), _atom("out", h)])
    if wrt in HIDDEN_WEIGHTS:
        h, x = HIDDEN_WEIGHTS[wrt]
        return ("prod", [_to_hidden(h), _atom("sig", h), _atom("x", x)])
    if wrt == "b2":
        return ("sum", [_delta_o(o) for o in OUTPUTS])
    if wrt == "b1":
        return ("sum", [("prod", [_to_hidden(h), _atom("sig", h)]) for h in HIDDEN])
    unit = wrt[3:]
    if wrt.startswith("outo"):
        return ("prod", [_atom("err", unit)])
    if wrt.startswith("neto"):
        return _delta_o(unit)
    if wrt.startswith("outh"):
        return _to_hidden(unit)
    if wrt.startswith("neth"):
        return ("prod", [_to_hidden(unit), _atom("sig", unit)])
    raise ValueError(f"no model answer for ∂E/∂{wrt}")


def _map_atoms(tree, change):
    if tree[0] == "atom":
        return change(tree)
    if tree[0] in ("prod", "sum"):
        return (tree[0], [_map_atoms(t, change) for t in tree[1]])
    return tree


def _atoms(tree):
    if tree[0] == "atom":
        yield tree
    elif tree[0] in ("prod", "sum"):
        for t in tree[1]:
            yield from _atoms(t)


def _has_sum(tree) -> bool:
    return tree[0] == "sum" or (tree[0] == "prod" and any(_has_sum(t) for t in tree[1]))


def _drop_sigma(tree):
    """The outermost σ' factor(s) dropped: a top-level one, else the one in every term of a sum."""
    if tree[0] == "prod":
        sigs = [t for t in tree[1] if t[0] == "atom" and t[1] == "sig"]
        if sigs:
            return ("prod", [t for t in tree[1] if t is not sigs[0]])
        return ("prod", [_drop_sigma(t) if t[0] == "sum" else t for t in tree[1]])
    if tree[0] == "sum":
        return ("sum", [_drop_sigma(t) for t in tree[1]])
    return tree


def _drop_path(tree, rng: random.Random):
    """One term of the (first) sum dropped."""
    if tree[0] == "sum":
        kept = list(tree[1])
        kept.pop(rng.randrange(len(kept)))
        return kept[0] if len(kept) == 1 else ("sum", kept)
    if tree[0] == "prod":
        done, parts = False, []
        for t in tree[1]:
            if not done and _has_sum(t):
                t, done = _drop_path(t, rng), True
            parts.append(t)
        return ("prod", parts)
    return tree


def common_mistakes(wrt: str) -> list[str]:
    tree = right_answer(wrt)
    names = ["sign", "factor-2"]
    if any(a[1] == "sig" for a in _atoms(tree)):
        names.append("missing-sigma-prime")
    if _has_sum(tree):
        names.append("missing-path")
    return names


def mistake(wrt: str, name: str, rng: random.Random):
    tree = right_answer(wrt)
    if name == "sign":  # y - out everywhere: the whole sign flips
        return _map_atoms(tree, lambda a: ("atom", "err-flipped", a[2]) if a[1] == "err" else a)
    if name == "factor-2":
        return ("prod", [("const", "2"), tree])
    if name == "missing-sigma-prime":
        return _drop_sigma(tree)
    if name == "missing-path":
        return _drop_path(tree, rng)
    raise ValueError(name)


def tail_answer(wrt: str, rng: random.Random):
    """A nearly unique wrong answer: a random constant factor, or one name swapped for a random other."""
    tree = right_answer(wrt)
    if rng.random() < 0.7:
        return ("prod", [("const", str(rng.randint(3, 99_999))), tree])
    atoms = [a for a in _atoms(tree) if a[1] in ("w", "out", "x", "sig")] or list(_atoms(tree))
    target = rng.choice(atoms)
    pool = {"w": [f"w{i}" for i in range(1, 9)], "out": list(HIDDEN), "x": ["x1", "x2"],
            "sig": list(HIDDEN + OUTPUTS), "err": list(OUTPUTS)}[target[1]]
    other = rng.choice([n for n in pool if n != target[2]])
    swapped = [False]

    def change(a):
        if a is target and not swapped[0]:
            swapped[0] = True
            return ("atom", a[1], other)
        return a

    return _map_atoms(tree, change)


# ---- spelling

def _latex_name(kind: str, name: str) -> str:
    if kind == "w":
        return f"w_{name[1:]}"
    if kind == "x":
        return f"x_{name[1:]}"
    return f"out_{{{name}}}"


class _Style:
    """One student's way of writing: the product sign, spacing, brackets, factor order."""

    def __init__(self, rng: random.Random, syntax: str):
        self.rng = rng
        self.syntax = syntax
        if syntax == "sympy":
            self.times = rng.choice(["*", " * "])
            self.minus = rng.choice([" - ", "-"])
        else:
            self.times = rng.choice([" ", r"\,", r" \cdot ", r"\cdot ", r"\, "])
            self.minus = rng.choice([" - ", "-"])
        self.left_right = syntax == "latex" and rng.random() < 0.15
        self.shuffle = rng.random() < 0.35
        self.minus_form = rng.random() < 0.1  # -(y_1 - out_{o1}) for (out_{o1} - y_1)

    def paren(self, text: str) -> str:
        return rf"\left({text}\right)" if self.left_right else f"({text})"

    def atom(self, kind: str, name: str) -> str:
        m = self.minus
        if self.syntax == "sympy":
            out, y = f"out{name}", f"y{name[1:]}"
            plain = {"err": f"({out}{m}{y})", "err-flipped": f"({y}{m}{out})", "sig": f"{out}*(1{m}{out})"}
            return plain.get(kind, name if kind != "out" else f"out{name}")
        out, y = f"out_{{{name}}}", f"y_{name[1:]}"
        if kind == "err":
            return self.paren(f"{out}{m}{y}")
        if kind == "err-flipped":
            return self.paren(f"{y}{m}{out}")
        if kind == "sig":
            return f"{out}{self.times if self.times.strip() else ' '}{self.paren(f'1{m}{out}')}"
        return _latex_name(kind, name)

    def render(self, tree, top: bool = True) -> str:
        if tree[0] == "const":
            return tree[1]
        if tree[0] == "atom":
            return self.atom(tree[1], tree[2])
        if tree[0] == "sum":
            text = " + ".join(self.render(t, top=False) for t in tree[1])
            return text if top else self.paren(text)
        parts = list(tree[1])
        if self.shuffle:
            self.rng.shuffle(parts)
            parts.sort(key=lambda t: t[0] != "const")  # a constant stays in front
        return self.times.join(self.render(part, top=False) for part in parts)

    def right(self, tree) -> str:
        """A right answer; now and then written with -(y - out) for (out - y) when it is a single product."""
        if self.minus_form and tree[0] == "prod" and sum(1 for a in _atoms(tree) if a[1] == "err") == 1:
            flipped = _map_atoms(tree, lambda a: ("atom", "err-flipped", a[2]) if a[1] == "err" else a)
            return "-" + self.paren(self.render(flipped)) if len(tree[1]) > 1 else "-" + self.render(flipped)
        return self.render(tree)


def _unreadable(wrt: str, rng: random.Random, style: _Style) -> str:
    if rng.random() < 0.5:
        text = style.render(right_answer(wrt))
        cut = rng.randrange(1, len(text))
        return text[:cut].rstrip() + rng.choice([r" \cdot", " +", " (", "*"]) if style.syntax == "latex" else \
            text[:cut].rstrip() + rng.choice([" *", " +", " ("])
    return rng.choice(UNREADABLE)


def _names(students: int, rng: random.Random) -> list[str]:
    names, seen = [], set()
    while len(names) < students:
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        if name in seen:
            name = f"{name} {len(names) + 1}"
        seen.add(name)
        names.append(name)
    return names


def make_class(students: int, seed: int, questions: list[tuple[str, str]] | None = None) -> list[tuple[str, str, str, str]]:
    """Rows (student, question, answer, syntax): syntax "" (the assignment's, LaTeX) or "sympy"."""
    return [row[:4] for row in labelled_class(students, seed, questions)]


def labelled_class(students: int, seed: int, questions: list[tuple[str, str]] | None = None):
    """make_class's rows, each with what the answer was made as: "right", a mistake's name ("sign",
    "factor-2", "missing-sigma-prime", "missing-path"), "tail", "empty" or "unreadable"."""
    questions = list(questions or DEFAULT_QUESTIONS)
    for _, wrt in questions:
        right_answer(wrt)  # an unknown wrt fails now
    rng = random.Random(seed)
    rows = []
    for student in _names(students, rng):
        ability = rng.uniform(0.6, 0.98)
        for question, wrt in questions:
            syntax = "sympy" if rng.random() < 0.125 else "latex"
            style = _Style(rng, syntax)
            roll = rng.random()
            if roll < ability:
                label, answer = "right", style.right(right_answer(wrt))
            else:
                wrong = rng.random()
                if wrong < 0.65:
                    label = rng.choice(common_mistakes(wrt))
                    answer = style.render(mistake(wrt, label, rng))
                elif wrong < 0.85:
                    label, answer = "tail", style.render(tail_answer(wrt, rng))
                elif wrong < 0.92:
                    label, answer = "empty", ""
                else:
                    label, answer = "unreadable", _unreadable(wrt, rng, style)
            rows.append((student, question, answer, "sympy" if syntax == "sympy" else "", label))
    return rows


def questions_of(assignment: str | Path) -> list[tuple[str, str]]:
    """(id, wrt) of each gradient question of an assignment file."""
    data = tomllib.loads(Path(assignment).read_text(encoding="utf-8"))
    return [(q["id"], q["wrt"]) for q in data["question"] if q.get("kind", "gradient") == "gradient"]


def write_csv(rows, path: str | Path) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["student", "question", "answer", "syntax"])
        writer.writerows(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--assignment", help="take the questions (id, wrt) from this assignment file")
    parser.add_argument("-o", "--output", help="the CSV to write (default: stdout)")
    args = parser.parse_args(argv)
    questions = questions_of(args.assignment) if args.assignment else None
    rows = make_class(args.students, args.seed, questions)
    if args.output:
        write_csv(rows, args.output)
    else:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["student", "question", "answer", "syntax"])
        writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
