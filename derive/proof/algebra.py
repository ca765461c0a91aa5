"""The algebra of the proof engine: cancellation, its size bounds, and the child process it runs in.

Anything that may take long (cancelling large expressions, `simplify`) runs
in a child process that is killed at the deadline and whose memory is
capped; in the main process, `_cancels` is tried only on expressions whose
expansion `_expanded_terms` bounds as small.
"""

from __future__ import annotations

import math
import multiprocessing
import random
from typing import TYPE_CHECKING, Mapping

import sympy as sp

from derive.graph import registry

if TYPE_CHECKING:
    from derive.proof.engine import Prover


def algebra_in_child(prover: Prover, lhs, rhs, assume, budget: float) -> str:
    """What the algebra found within `budget` seconds (see _algebra_child), the child killed at the deadline."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_algebra_child, args=(prover, lhs, rhs, assume, send), daemon=True)
    child.start()
    send.close()
    try:
        if receive.poll(budget):
            return receive.recv()
        return f"undecided within the budget of {prover.budget:g} s"
    except EOFError:
        return "the symbolic step failed"
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receive.close()


CHILD_MEMORY = 2 << 30  # bytes the algebra child may add to what it inherits


def _limit_memory(extra: int = CHILD_MEMORY) -> None:
    """Cap this process's address space at its present size plus `extra`: an expansion too large fails
    with MemoryError (reported as a failed step) instead of exhausting the machine before the deadline."""
    try:
        import resource

        with open("/proc/self/statm") as statm:
            size = int(statm.read().split()[0]) * resource.getpagesize()
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        wanted = size + extra
        if hard != resource.RLIM_INFINITY:
            wanted = min(wanted, hard)
        if soft == resource.RLIM_INFINITY or wanted < soft:
            resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))
    except (ImportError, OSError, ValueError):  # not Linux: the deadline alone bounds the child
        pass


def _algebra_child(prover: Prover, lhs, rhs, assume, send) -> None:
    """In the child: cancel at every expansion level, then simplify; report the first zero."""
    _limit_memory()
    try:
        for level, how, difference in prover.expansion_levels(lhs, rhs, assume):
            if _cancels(difference, assume):
                send.send("proven: " + after_levels("cancel() reduced the difference to 0", level) + how)
                return
        last = _exp_generators(difference.xreplace(assume) if assume else difference)
        if sp.simplify(last) == 0:
            send.send("proven: simplify() reduced the fully expanded difference to 0")
            return
        send.send("no symbolic simplification reached zero")
    except Exception as exc:  # a failure in SymPy is reported, never raised into the parent
        send.send(f"the symbolic step failed ({type(exc).__name__})")
    finally:
        send.close()


def _cancels(difference: sp.Expr, assume: Mapping, limit: int | None = None) -> bool:
    """Whether expand or cancel reduces the difference to 0.

    With a `limit` (in the main process, without a deadline), False without
    trying when expanding or bringing it over a common denominator could
    make more than `limit` terms: the child process, which has a deadline,
    tries it then.
    """
    if assume:
        difference = difference.xreplace(assume)
    if difference == 0:
        return True
    if limit is not None and _expanded_terms(difference, limit) > limit:  # before exp arguments are expanded
        return False
    normal = _exp_generators(difference)
    if limit is not None and _expanded_terms(normal, limit) > limit:  # σ, tanh as fractions of generators
        return False
    if _surely_nonzero(normal):  # cancel could not reach 0: do not spend the time
        return False
    # A polynomial difference is zero exactly when it expands to 0, and expand is
    # far cheaper than together() on large sums; rational ones need cancel().
    if sp.expand(normal) == 0:
        return True
    return sp.cancel(sp.together(normal)) == 0


FILTER_MAX_EXPONENT = 256


def _surely_nonzero(normal: sp.Expr) -> bool:
    """Whether `normal`, as a function of its symbols, is certainly not identically 0: a quick filter before cancel.

    Every symbol gets an exact rational value that its assumptions allow
    (a positive one; a positive integer for an integer symbol). Where the
    result is a rational number (no σ, no exp of a constant left) and is
    not 0, the rational function is not identically 0, so neither expand
    nor cancel can reduce it to 0. Anything else (0, an undefined value, an
    opaque atom such as sigma(3/7)) says nothing: True only for certain.
    This never proves anything; it only spares cancel() a doomed search,
    which can take many seconds on a rational function of exponentials.
    """
    if any(not p.exp.is_Number or abs(p.exp) > FILTER_MAX_EXPONENT for p in normal.atoms(sp.Pow)):
        return False  # x**(10**9) at a rational point: a number too large to compute for a mere filter
    rng = random.Random(len(normal.free_symbols))
    values = {}
    for x in normal.free_symbols:
        if x.is_nonpositive or x.is_rational is False or x.is_algebraic is False:
            return False  # assumptions a positive rational cannot meet
        if x.is_integer:
            if x.is_even is not None or x.is_prime is not None:
                return False
            values[x] = sp.Integer(rng.randint(1, 9))
        else:  # odd over even: positive, never an integer (for a symbol assumed not to be one)
            values[x] = sp.Rational(2 * rng.randint(1, 48) + 1, 2 * rng.randint(1, 44))
    try:
        value = normal.xreplace(values)
    except (ZeroDivisionError, ArithmeticError, TypeError, ValueError):
        return False
    return bool(value.is_Rational and value != 0)


_generators: dict[sp.Expr, sp.Symbol] = {}


def _exp_generators(expr: sp.Expr) -> sp.Expr:
    """Rewrite σ, tanh and softmax through exp, then each exp(c·m) as G_m**c with one symbol G_m per monomial m.

    Exponentials of distinct monomials are algebraically independent, and
    treating them as independent generators is sound in any case: an identity
    in the generators holds at their actual values. `cancel` then decides
    rational identities in them.
    """
    forms = registry.EXP_FORMS  # σ, tanh, softmax, …: registry.py
    rewritten = expr.replace(lambda e: type(e) in forms, lambda e: forms[type(e)](e))

    def generator(e):
        argument = sp.expand(e.args[0])
        factors = []
        for term in sp.Add.make_args(argument):
            coefficient, monomial = term.as_coeff_Mul()
            if monomial == 1:
                factors.append(sp.exp(coefficient))
                continue
            g = _generators.get(monomial)
            if g is None:
                g = sp.Dummy(f"exp_{len(_generators)}", positive=True)
                _generators[monomial] = g
            factors.append(g**coefficient)
        return sp.Mul(*factors)

    return rewritten.replace(lambda e: isinstance(e, sp.exp), generator)


def _expanded_terms(expr: sp.Expr, cap: int) -> int:
    """An upper bound, counting no further than cap + 1, on the terms `expand` and `together` make of expr.

    A power of a sum with n terms to the k has at most C(n+k-1, k) terms
    (the monomials of degree k); products multiply; a sum over a common
    denominator multiplies its numerators by every other term's denominator;
    the arguments of functions (exp, σ, …) are expanded too.
    """
    over = cap + 1
    memo: dict[sp.Basic, int] = {}
    inner = 0  # terms made inside function arguments and non-integer powers

    def power_terms(base, k: int) -> int:
        t = terms(base)
        if t <= 1:
            return 1
        return over if k > 4 * over else min(over, math.comb(t + k - 1, k))

    def terms(e) -> int:
        nonlocal inner
        if not e.args:
            return 1
        found = memo.get(e)
        if found is not None:
            return found
        if e.is_Add:
            numerators, denominators = 0, {}
            for term in e.args:
                numerator = 1
                for factor in sp.Mul.make_args(term):
                    if factor.is_Pow and factor.exp.is_Integer and factor.exp < 0:
                        denominators[factor] = terms(factor)
                    else:
                        numerator = min(over, numerator * terms(factor))
                numerators = min(over, numerators + numerator)
            n = numerators
            for count in denominators.values():
                n = min(over, n * count)
        elif e.is_Mul:
            n = 1
            for a in e.args:
                n = min(over, n * terms(a))
        elif e.is_Pow and e.exp.is_Integer:
            n = power_terms(e.base, abs(int(e.exp)))
        elif e.is_Pow:
            n = 1
            inner = min(over, inner + terms(e.base) + terms(e.exp))
        else:
            n = 1
            for a in e.args:
                inner = min(over, inner + terms(a))
        memo[e] = n
        return n

    return min(over, terms(expr) + inner)


def after_levels(what: str, level: int) -> str:
    """A proof method's text, saying how many levels of definitions were substituted before it applied."""
    if level == 0:
        return what
    return f"{what} after {level} level{'s' if level > 1 else ''} of substitution"
