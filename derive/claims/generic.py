r"""Claims with index letters and chained derivations, read into instances and links.

`formula = '\frac{\partial C}{\partial w^l_{jk}} = a^{l-1}_k \delta^l_j'` is
read at every l, j, k where all of its names exist (derive.claims.indices says
how the letters and their ranges are found); `formula = 'A = B = C'` is a
chain whose links `A = B`, `B = C` are each decided. A gradient or update
claim's target is the chain's first member: `wrt = "w5"` with `formula = 'B = C'`
has the links ∂E/∂w5 = B and B = C.

The reading as written (no index letters bound) is tried first. When it reads
and the letters also give instances, the claim is ambiguous and refused with
both readings; when it does not read, the letters' instances are the claim's,
and when there are none the claim is refused with the reading's own error.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Mapping

import sympy as sp

from derive.errors import FormulaError, InputError, ReadingFault
from derive.claims import indices as ix
from derive.claims.latex_tokens import NormalNames, tokenize
from derive.claims.vocabulary import ClaimVocabulary, bound_size
from derive.proof.formulas import Instantiator, _template
from derive.proof.report import MAX_INSTANCES

# Reading a claim's instances stops after this long (each instance is then decided within the claim's budgets).
MAX_READING_SECONDS = 10.0
_LAYERED_FAMILIES = {"w", "b", "z", "a", "delta"}


@dataclass(frozen=True)
class Part:
    """One link of one instance: lhs = rhs in the network's symbols."""

    link: int  # 1-based
    indices: tuple[tuple[str, int], ...]
    lhs: sp.Expr
    rhs: sp.Expr
    mentioned: tuple[sp.Symbol, ...] = ()


@dataclass(frozen=True)
class Generic:
    """A claim read as instances and links: its parts in link-major order."""

    parts: tuple[Part, ...]
    links: int
    instances: int
    link_texts: tuple[str, ...] = ()  # the chain's members as typed (the target's description first, if any)
    letters: tuple[str, ...] = ()
    first: tuple = field(default=(), hash=False)  # the first instance's members


def split_chain(text: str, syntax: str) -> list[tuple[str, int]]:
    """A chain `A = B = C` split at its top-level `=`: [(member text, its 0-based offset)]."""
    cuts: list[int] = []
    if syntax == "latex":
        depth = 0
        for token in tokenize(text):
            if token.kind == "op" and token.text in "{([":
                depth += 1
            elif token.kind == "op" and token.text in "})]":
                depth -= 1
            elif token.kind == "op" and token.text == "=" and depth == 0:
                cuts.append(token.column - 1)  # an `=`, or a \equiv (the tokenizer reads it as one)
    else:
        depth = 0
        for i, char in enumerate(text):
            if char in "([{":
                depth += 1
            elif char in ")]}":
                depth -= 1
            elif (char == "=" and depth == 0 and text[i - 1:i] not in ("=", "<", ">", "!")
                  and text[i + 1:i + 2] != "="):
                cuts.append(i)
    pieces, start = [], 0
    for cut in [*cuts, len(text)]:
        pieces.append((text[start:cut], start))
        start = cut + (len(r"\equiv") if text.startswith(r"\equiv", cut) else 1)
    for piece, offset in pieces:
        if not piece.strip():
            raise FormulaError("a side of '=' is empty", column=offset + 1)
    return pieces


class _Reader:
    """Reads a claim's members at one assignment of its letters (LaTeX, SymPy, or SymPy's indexed form)."""

    def __init__(self, vocabulary: ClaimVocabulary, syntax: str, latex_names, pieces, where: str):
        self.vocabulary, self.syntax, self.latex_names = vocabulary, syntax, latex_names
        self.pieces, self.where = pieces, where
        self.templates: list | None = None
        self.instantiator: _ClaimInstantiator | None = None
        self.families: dict[str, list[sp.Symbol]] = {}  # a bare family letter (∂C/∂w) ↦ its members, in order
        self.first_failure: tuple | None = None  # (values, error) of the first instance that did not read

    def read(self, env: Mapping[str, int]) -> tuple[list[sp.Expr], list[tuple]]:
        """The members and the δs each names; an InputError when a name does not exist."""
        vocabulary = self.vocabulary
        members, mentioned = [], []
        latex_names = self.latex_names
        if self.families and any(letter in env for letter in self.families):  # w stands for its env[w]-th member
            chosen = {letter: self.families[letter][env[letter] - 1].name for letter in self.families if letter in env}
            latex_names = NormalNames({**self.latex_names, **chosen})
            env = {k: v for k, v in env.items() if k not in self.families}
        for number, (piece, offset) in enumerate(self.pieces):
            vocabulary.mentioned.clear()
            where = self.where if len(self.pieces) == 1 else f"{self.where} (side {number + 1})"
            try:
                if self.templates is not None:
                    members.append(self._instantiate(self.templates[number], env, where))
                else:
                    members.append(vocabulary.parse(piece, self.syntax, latex_names, where, indices=env))
            except InputError as exc:
                column = exc.column + offset if exc.column is not None else None
                raise type(exc)(exc.message, where=exc.where, column=column) from None  # a ReadingFault stays one
            mentioned.append(tuple(vocabulary.mentioned))
        return members, mentioned

    def _instantiate(self, template, env: Mapping[str, int], where: str) -> sp.Expr:
        symbols = {sp.Symbol(k, integer=True): v for k, v in env.items() if k != "L"}
        try:
            expr = self.instantiator.expr(template, symbols)
            bound_size(expr)
        except (LookupError, ValueError, TypeError) as exc:
            raise FormulaError(str(exc.args[0]) if exc.args else "cannot be read here").located(where) from None
        except FormulaError as exc:
            raise exc.located(where) from None
        return self.vocabulary.folder(expr)

    def use_templates(self, known) -> dict[str, str]:
        """SymPy's indexed form (delta[l, j]): parse the templates, return the free letters (letter ↦ role)."""
        vocabulary = self.vocabulary
        letters: dict[str, str] = {}
        layered = ix.layer_count(vocabulary.network) is not None
        for piece, offset in self.pieces:
            vocabulary.spend(piece, "sympy")
            try:
                template = _template(piece, {}, self.where)
            except InputError as exc:
                column = exc.column + offset if exc.column is not None else None
                raise type(exc)(exc.message, where=exc.where, column=column) from None
            free = {s.name for s in template.free_symbols}  # a sum's own index is bound
            for item in sorted(template.atoms(sp.Indexed), key=str):
                for position, index in enumerate(item.indices):
                    for s in sorted(index.free_symbols, key=lambda s: s.name):  # Indexed holds SymPy objects
                        if len(s.name) == 1 and s.name in free and not known(s.name):
                            role = "layer" if layered and position == 0 and str(item.base) in _LAYERED_FAMILIES \
                                or str(item.base) == "size" else "unit"
                            if letters.get(s.name) != "layer":
                                letters[s.name] = role
        index_symbols = {k: sp.Symbol(k, integer=True) for k in letters}
        self.templates = [_template(piece, index_symbols, self.where) for piece, _ in self.pieces]
        self.instantiator = _ClaimInstantiator(vocabulary)
        return letters


class _ClaimInstantiator(Instantiator):
    """The formula sets' instantiator, knowing also the claims file's definitions, rates and δ spellings."""

    def __init__(self, vocabulary: ClaimVocabulary):
        super().__init__(vocabulary.network, vocabulary.derivations)
        self.vocabulary = vocabulary

    def name(self, name: str) -> sp.Expr:
        try:
            return super().name(name)
        except LookupError:
            return self.vocabulary.name(name)  # a LookupError of its own for an unknown name


def read_generic(entry: Mapping, kind: str, syntax: str, pieces, vocabulary: ClaimVocabulary, latex_names,
                 file_table: Mapping[str, str], head: sp.Expr | None, where: str) -> Generic | None:
    """The claim's instances and links, or None for a claim of one link without index letters (read as before)."""
    network = vocabulary.network
    if not getattr(vocabulary, "index_letters", True) and len(pieces) + (head is not None) == 2 and not (
            entry.get("indices") or entry.get("where") or file_table):
        return None  # one link, read as written
    fixed = dict(vocabulary.indices)

    # the capital that ends a family's name labels a layer of the book's CNN (zF, aP, wO): never an index
    labels = {key[-1] for key in network.families if len(key) > 1 and key[-1].isupper()}

    def known(letter: str) -> bool:
        return (letter in network.by_name or letter in vocabulary.definitions or letter in vocabulary.rates
                or letter in fixed or letter in labels or letter == vocabulary.example)

    reader = _Reader(vocabulary, syntax, latex_names, pieces, where)
    table = {**file_table, **ix.parse_index_table(entry.get("indices"), f"{where} indices")}
    conditions = ix.parse_conditions(entry.get("where"), f"{where} where")
    if syntax == "latex":
        letters: dict[str, str] = {}
        for piece, _ in pieces:
            for letter, role in ix.latex_letters(piece, known).items():
                if letters.get(letter) != "layer":
                    letters[letter] = role
        for letter, members in _family_letters(pieces, network, known, letters).items():
            letters[letter] = "unit"
            table.setdefault(letter, f"1..{len(members)}")
            reader.families[letter] = members
    elif any("[" in piece for piece, _ in pieces):
        literal = _try(reader, fixed)
        if isinstance(literal, tuple):
            return _generic(pieces, head, [(fixed, *literal)], (), 1) if len(pieces) + (head is not None) > 2 \
                else None
        letters = reader.use_templates(known)
    else:
        letters = {}
    links = len(pieces) + (head is not None) - 1
    if not letters and links == 1 and not conditions and "indices" not in entry:
        return None
    if reader.templates is None:
        literal = _try(reader, fixed)
    readings = _instances(reader, letters, table, fixed, conditions, network, where) if letters else []
    if reader.families:  # an instance of ∂C/∂w names its weight, not its place in the family
        readings = [({k: reader.families[k][v - 1].name if k in reader.families else v for k, v in env.items()},
                     *rest) for env, *rest in readings]
    if isinstance(literal, tuple):
        if readings:
            env = ", ".join(f"{k}={v}" for k, v in readings[0][0].items() if k in letters)
            raise FormulaError(
                f"ambiguous: read as written it is {' = '.join(map(str, literal[0]))}; read with the index "
                f"letters {', '.join(letters)} it has {len(readings)} instance(s), the first at {env} "
                f"({' = '.join(map(str, readings[0][1]))}); rename, or declare the letters in indices = {{ … }}"
            ).located(where)
        if letters and (conditions or "indices" in entry):
            raise FormulaError(f"no values of the index letters {', '.join(letters)} give an instance where every "
                               "name exists").located(where)
        if links == 1:
            return None  # read as written, as before
        readings = [(fixed, *literal)]
    elif not readings:
        if not letters and isinstance(literal, InputError):
            raise literal
        detail = f"; and no values of the index letters {', '.join(letters)} make every name exist" if letters else ""
        if letters and reader.first_failure is not None:  # what went wrong where the letters start
            env, failure = reader.first_failure
            values = ", ".join(f"{k}={v}" for k, v in env.items() if k in letters)
            detail += f" (at {values}: {failure.message})"
        if isinstance(literal, InputError):
            raise InputError(literal.message + detail, where=literal.where, column=literal.column)
        raise FormulaError(f"no values of the index letters {', '.join(letters)} give an instance where every "
                           "name exists").located(where)
    return _generic(pieces, head, readings, tuple(letters), len(readings))


FAMILY_LETTERS = ("w", "b", "z", "a", "x", "y")  # Nielsen's ∂C/∂w, ∂C/∂b: every weight, every bias


def _family_letters(pieces, network, known, letters) -> dict[str, list[sp.Symbol]]:
    """Bare letters that name a whole family of a layered network (`w` in ∂C/∂w = ∂C_0/∂w + (λ/n) w): the
    claim is then decided for every member, as the textbook means it."""
    if ix.layer_count(network) is None:
        return {}
    found = {}
    for piece, _ in pieces:
        for letter in ix.bare_letters(piece):
            members = network.families.get(letter, {})
            if letter in FAMILY_LETTERS and len(members) > 1 and not known(letter) and letter not in letters:
                found[letter] = [members[key] for key in sorted(members)]
    return found


def _try(reader: _Reader, env) -> tuple | InputError:
    try:
        return reader.read(env)
    except InputError as exc:
        if reader.vocabulary.work_left <= 0:
            raise
        return exc


def _instances(reader: _Reader, letters, table, fixed, conditions, network, where: str) -> list:
    """[(env, members, mentioned)] for every assignment of the letters where every name exists; bounded."""
    cap = min(ix.MAX_CLAIM_INSTANCES, MAX_INSTANCES)
    stop = time.perf_counter() + MAX_READING_SECONDS
    readings, reader.first_failure = [], None
    for env in ix.environments(letters, table, fixed, network, conditions, f"{where} where"):
        if time.perf_counter() > stop:
            raise FormulaError(f"reading its instances took more than {MAX_READING_SECONDS:g} s; narrow the index "
                               "letters with indices = { … } or where = '…'").located(where)
        found = _try(reader, env)
        if isinstance(found, InputError):
            if not _missing_name(found):  # its names exist but it cannot be read: never skipped quietly
                values = ", ".join(f"{k}={v}" for k, v in env.items() if k in letters)
                raise InputError(f"at {values}: {found.message}", where=found.where, column=found.column)
            if reader.first_failure is None:
                reader.first_failure = (env, found)
            continue
        readings.append((env, *found))
        if len(readings) > cap:
            raise FormulaError(f"it has more than {cap:,} instances; narrow the index letters with "
                               "indices = { … } or where = '…'").located(where)
    return readings


def _missing_name(exc: InputError) -> bool:
    """Whether an instance failed because the network lacks what it names at those values (`w^4_{11}` in a
    3-layer net), rather than because the claim cannot be read (a ReadingFault): the first is skipped, the
    second refused."""
    return not isinstance(exc, ReadingFault)


def _generic(pieces, head, readings, letters: tuple, count: int) -> Generic:
    parts = []
    members_of = [([head] if head is not None else []) + list(members) for _, members, _ in readings]
    mentions = [([()] if head is not None else []) + list(mentioned) for _, _, mentioned in readings]
    links = len(members_of[0]) - 1
    for link in range(1, links + 1):
        for (env, _, _), members, mentioned in zip(readings, members_of, mentions):
            shown = tuple((k, v) for k, v in env.items() if k in letters)
            parts.append(Part(link, shown, members[link - 1], members[link], mentioned[link]))
    texts = tuple(piece.strip() for piece, _ in pieces)
    return Generic(tuple(parts), links, count, texts, letters, tuple(members_of[0]))
