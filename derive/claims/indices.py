r"""Index letters of a claim: which letters are free, what each ranges over, and the conditions on them.

A claim such as `\frac{\partial C}{\partial w^l_{jk}} = a^{l-1}_k \delta^l_j`
holds for every l, j, k. The letters are found, not declared: in LaTeX a free
letter is a single letter standing in a script (sub- or superscript) that no
sum in the formula binds and that is no known name; in SymPy syntax it is a
single-letter name used inside an index (`delta[l, j]`, `size[l+1]`). In a
layered network `L` is the number of layers (unless it is a known name).

Ranges: a letter in a superscript (LaTeX) or the first index of a layered
family (`w[l, j, k]`) is a layer, 1..L; any other letter a unit, 1..the
largest layer size (1..9 in a network without sizes). An instance is kept
only where every name exists. The optional `indices` table (file level, and
per claim) settles what the claim cannot:

    indices = { l = "L", j = "layer l", k = "1..3" }

a value is a fixed index expression (`"L"`, `"2"`, `"l-1"`), a range
`"lo..hi"` of index expressions, or `"layer X"`: 1..the size of layer X.
`where = 'k \neq j, l = L'` keeps only the instances where each condition
holds (`=`, `\neq`, `!=`, `<`, `>`, `\le`, `\ge`, `<=`, `>=`, separated by
commas or `\text{and}`).
"""

from __future__ import annotations

import re
from typing import Mapping

from derive.errors import FormulaError, InputError
from derive.claims.latex_tokens import tokenize
from derive.graph.network import Network

# The combinations of index values tried for one claim, and the instances kept (each is decided by the prover).
MAX_CANDIDATES = 20_000
MAX_CLAIM_INSTANCES = 2_000
_WORDS = {r"\text", r"\mathrm", r"\textrm", r"\mathit", r"\operatorname"}


def layer_count(network: Network) -> int | None:
    """L: the number of layers of a layered network, else None."""
    value = network.facts.get("L")
    return int(value) if isinstance(value, int) and network.facts.get("kind") == "layered" else None


def sizes(network: Network) -> tuple[int, ...]:
    found = network.facts.get("sizes")
    return tuple(int(s) for s in found) if isinstance(found, (tuple, list)) and found else ()


def fixed_letters(network: Network, known) -> dict[str, int]:
    """The letters bound before any instance: L, the number of layers (unless L is a known name)."""
    layers = layer_count(network)
    return {"L": layers} if layers is not None and not known("L") else {}


def latex_letters(text: str, known) -> dict[str, str]:
    """The free letters of a LaTeX formula, in order of appearance: letter ↦ "layer" (a superscript) or "unit"."""
    tokens = tokenize(text)
    found: dict[str, str] = {}
    bound: set[str] = set()
    i = 0
    owner_of_last = None  # the token a script group belongs to, for chained scripts (w^l_{jk})
    last_end = -1
    while i < len(tokens):
        token = tokens[i]
        if token.kind == "op" and token.text in "^_" and i > 0:
            owner = owner_of_last if last_end == i - 1 else tokens[i - 1]
            end = script_end(tokens, i + 1)
            group = tokens[i + 1:end + 1]
            if owner.kind == "command" and owner.text == r"\sum":
                if token.text == "_":  # \sum_{k=1}, \sum_k, \sum_{i,j}: every letter before an `=` is the sum's
                    for t in group:
                        if t.kind == "op" and t.text == "=":
                            break
                        if t.kind == "letters" and len(t.text) == 1:
                            bound.add(t.text)
            elif not (token.text == "^" and owner.kind == "letters" and owner.text == "e"):
                role = "layer" if token.text == "^" else "unit"
                for letter in _group_letters(group):
                    if role == "layer" or letter not in found:
                        found[letter] = role
            owner_of_last, last_end = owner, end
            i = end + 1
            continue
        i += 1
    return {k: v for k, v in found.items() if k not in bound and not known(k)}



def bare_letters(text: str) -> list[str]:
    """Single letters standing alone outside every script (`w` in ∂C/∂w), in order of appearance."""
    tokens = tokenize(text)
    found: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.kind == "op" and token.text in "^_":
            i = script_end(tokens, i + 1) + 1
            continue
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        scripted = following is not None and following.kind == "op" and following.text in "^_"
        if token.kind == "letters" and len(token.text) == 1 and not scripted and token.text not in found:
            found.append(token.text)
        i += 1
    return found

def script_end(tokens, start: int) -> int:
    """The index of a script's last token: a braced group's closing brace, or the single token."""
    if start >= len(tokens):
        return start - 1
    if tokens[start].kind == "op" and tokens[start].text == "{":
        depth = 0
        for j in range(start, len(tokens)):
            if tokens[j].kind == "op" and tokens[j].text == "{":
                depth += 1
            elif tokens[j].kind == "op" and tokens[j].text == "}":
                depth -= 1
                if depth == 0:
                    return j
        return len(tokens) - 1
    if tokens[start].kind == "command" and tokens[start].text in _WORDS:
        return script_end(tokens, start + 1)
    return start


def _group_letters(group) -> list[str]:
    letters, skip_depth, depth = [], None, 0
    for j, t in enumerate(group):
        if t.kind == "op" and t.text == "{":
            depth += 1
        elif t.kind == "op" and t.text == "}":
            if skip_depth is not None and depth == skip_depth:
                skip_depth = None
            depth -= 1
        elif t.kind == "command" and t.text in _WORDS:
            skip_depth = depth + 1  # a word in \text{}: no index letters
        elif t.kind == "letters" and skip_depth is None and _index_run(t, group[j + 1] if j + 1 < len(group) else None):
            letters.extend(c for c in t.text if c not in letters)
    return letters


MAX_INDEX_RUN = 3  # w_{jk}, a^F_{k,ij}, w^O_{n,kij}: index letters run together are few; E_{total} is a word


def _index_run(token, following) -> bool:
    """Whether a letter run in a script is index letters: short, and not a name with scripts of its own
    (the w_5 of w_5^{w_5}, the o_1 of E_{o_1})."""
    if len(token.text) > MAX_INDEX_RUN:
        return False
    return not (following is not None and following.kind == "op" and following.text in "^_")


# ---------------------------------------------------------------------------
# Index expressions: integers and letters joined by + and -
# ---------------------------------------------------------------------------

_INDEX_TOKEN = re.compile(r"\s*(\d+|[A-Za-z]|[-+])")


def index_value(text: str, env: Mapping[str, int], where: str) -> int:
    """`l-1`, `L`, `2`: an integer from letters bound in env, or an InputError."""
    pos, total, sign, expect_term = 0, 0, 1, True
    text = text.strip()
    if not text:
        raise InputError("an index expression is empty", where=where)
    while pos < len(text):
        match = _INDEX_TOKEN.match(text, pos)
        if match is None:
            raise InputError(f"'{text}' is not an index expression (integers and letters with + and -)", where=where)
        part, pos = match.group(1), match.end()
        if part in "+-":
            sign = sign * (-1 if part == "-" else 1)
            expect_term = True
            continue
        if not expect_term:
            raise InputError(f"'{text}' is not an index expression (integers and letters with + and -)", where=where)
        if part.isdigit():
            if len(part) > 9:
                raise InputError(f"'{part}' is too large for an index", where=where)
            value = int(part)
        elif part in env:
            value = env[part]
        else:
            raise InputError(f"'{part}' in '{text}' is not an index letter of the claim (nor L)", where=where)
        total, sign, expect_term = total + sign * value, 1, False
    if expect_term:
        raise InputError(f"'{text}' ends with an operator", where=where)
    return total


def letters_of(text: str) -> set[str]:
    return set(re.findall(r"[A-Za-z]", text))


_RELATIONS = [(r"\neq", "!="), (r"\ne", "!="), (r"\leq", "<="), (r"\le", "<="), (r"\geq", ">="), (r"\ge", ">="),
              ("!=", "!="), ("<=", "<="), (">=", ">="), ("==", "="), ("=", "="), ("<", "<"), (">", ">")]
_COMPARE = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
            ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b}


def parse_conditions(raw, where: str) -> list[tuple[str, str, str]]:
    r"""`where = 'k \neq j, l = L'`: [(left, relation, right)], each side an index expression."""
    if raw is None:
        return []
    if not isinstance(raw, str) or not raw.strip():
        raise InputError(r"must be conditions on the index letters, such as 'k \neq j, l = L'", where=where)
    text = re.sub(r"\\(text|mathrm)\{\s*and\s*\}|\\land|\\wedge|\band\b|;", ",", raw)
    found = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        for spelled, relation in _RELATIONS:
            if spelled in part:
                left, right = part.split(spelled, 1)
                found.append((left.replace("{", "").replace("}", ""), relation, right.replace("{", "").replace("}", "")))
                break
        else:
            raise InputError(f"'{part}' is no condition (write 'k \\neq j', 'l = L', 'j < 3')", where=where)
    return found


def conditions_hold(conditions, env: Mapping[str, int], where: str) -> bool:
    return all(_COMPARE[rel](index_value(a, env, where), index_value(b, env, where)) for a, rel, b in conditions)


def parse_index_table(raw, where: str) -> dict[str, str]:
    """`indices = { l = "L", j = "layer l", k = "1..3" }`: letter ↦ its range as typed."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, (str, int)) for v in raw.values()):
        raise InputError('must be a table of letter = "range", such as { j = "layer l", k = "1..3", l = "L" }',
                         where=where)
    table = {}
    for letter, value in raw.items():
        if not re.fullmatch(r"[A-Za-z]", letter):
            raise InputError(f"'{letter}' is not a single letter", where=f"{where} {letter}")
        table[letter] = str(value)
    return table


def letter_range(letter: str, role: str, spelled: str | None, env: Mapping[str, int], network: Network,
                 where: str) -> range:
    """The values a letter takes, given the letters before it."""
    here = f"{where} {letter}"
    if spelled is None:
        layers, widths = layer_count(network), sizes(network)
        if role == "layer" and layers is not None:
            return range(1, layers + 1)
        return range(1, (max(widths) if widths else 9) + 1)
    spelled = spelled.strip()
    if spelled.startswith("layer "):
        layer = index_value(spelled[len("layer "):], env, here)
        widths = sizes(network)
        if not 1 <= layer <= len(widths):
            return range(0)
        return range(1, widths[layer - 1] + 1)
    if ".." in spelled:
        lo, hi = spelled.split("..", 1)
        return range(index_value(lo, env, here), index_value(hi, env, here) + 1)
    value = index_value(spelled, env, here)
    return range(value, value + 1)


def ordered_letters(letters: Mapping[str, str], table: Mapping[str, str]) -> list[str]:
    """The letters in order of appearance, each after the letters its declared range uses."""
    order: list[str] = []
    pending = list(letters)
    for _ in range(len(pending) + 1):
        for letter in list(pending):
            needs = letters_of(table.get(letter, "").replace("layer", "")) & set(letters) - {letter}
            if needs <= set(order):
                order.append(letter)
                pending.remove(letter)
        if not pending:
            return order
    raise FormulaError(f"the ranges of {', '.join(pending)} depend on each other")


def environments(letters: Mapping[str, str], table: Mapping[str, str], fixed: Mapping[str, int], network: Network,
                 conditions, where: str):
    """Every assignment of the letters (fixed ones first), in order, where the conditions hold; bounded."""
    order = ordered_letters(letters, table)
    tried = 0

    def walk(position: int, env: dict):
        nonlocal tried
        if position == len(order):
            tried += 1
            if tried > MAX_CANDIDATES:
                raise FormulaError(f"its index letters take more than {MAX_CANDIDATES:,} combinations of values; "
                                   "narrow them with indices = { … } or where = '…'").located(where)
            if conditions_hold(conditions, env, where):
                yield {**{k: v for k, v in env.items() if k not in order}, **{k: env[k] for k in order}}
            return
        letter = order[position]
        for value in letter_range(letter, letters[letter], table.get(letter), env, network, where):
            env[letter] = value
            yield from walk(position + 1, env)
        env.pop(letter, None)

    yield from walk(0, dict(fixed))
