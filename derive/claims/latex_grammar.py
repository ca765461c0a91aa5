"""The LaTeX reader's grammar: the recursive-descent parser of the grammar in `derive.claims.latex`."""

from __future__ import annotations

from typing import Mapping

import sympy as sp

from derive.errors import FormulaError
from derive.graph.parser import MAX_EXACT_DIGITS, Token, Vocabulary, _number, _power, check_constant
from derive.claims.latex_sums import Probe, SumReader
from derive.claims.latex_tokens import (
    CLOSE, CLOSE_SIZES, DECORATIONS, FUNCTIONS, GREEK, MAX_STEPS, OPEN_SIZES, PRODUCTS, SIZES, WORDS,
    IndexBindings, NormalNames, error_message,
)


class FormulaParser(SumReader):
    """A formula's reader: expressions, fractions, derivatives and functions, over the sums, names and tokens below."""

    def __init__(self, text: str, tokens: list[Token], vocabulary: Vocabulary, latex_names: Mapping[str, str],
                 max_steps: int = MAX_STEPS):
        super().__init__(text, tokens, max_steps)
        self.vocabulary = vocabulary
        self.latex_names = NormalNames.of(latex_names)
        self.sum_terms = 0
        self.tower = 0
        self.indices = IndexBindings()
        self.index_log: list[str] = []
        self.probes: list[Probe] = []

    # -- expressions -----------------------------------------------------------------
    def parse(self) -> sp.Expr:
        expr = self.expression()
        if self.token.kind != "end":
            raise self.error("expected an operator or the end of the formula")
        return expr

    def expression(self) -> sp.Expr:
        self.enter()
        terms = [self.product(signed=True)]
        while self.at("+") or self.at("-"):
            sign = self.advance().text
            term = self.product(signed=True)
            terms.append(-term if sign == "-" else term)
        self.depth -= 1
        return terms[0] if len(terms) == 1 else sp.Add(*terms)

    def product(self, signed: bool) -> sp.Expr:
        factors = [self.factor(signed)]
        while True:
            if self.at("*") or (self.token.kind == "command" and self.token.text[1:] in PRODUCTS):
                self.advance()
                factors.append(self.factor(signed=True))
            elif self.at("/"):
                self.advance()
                token = self.token
                divisor = self.factor(signed=True)
                factors.append(self.reciprocal(divisor, token))
            elif self.starts_factor():
                previous = self.tokens[self.pos - 1]
                if previous.kind == "number" and self.token.kind == "number":
                    raise self.two_numbers(previous)
                factors.append(self.factor(signed=False))
            else:
                break
        return factors[0] if len(factors) == 1 else _bounded(sp.Mul(*factors), self.token.column)

    def two_numbers(self, previous: Token) -> FormulaError:
        # TeX prints `x_12` as x₁2 and `2 3` as 23: surely a typo either way
        message = f"expected an operator such as \\cdot between two numbers but found '{self.token.text}'"
        script = self.tokens[self.pos - 2]
        if script.kind == "op" and script.text in "_^":
            message += f" (write {script.text}{{{previous.text}{self.token.text}}} for a script of several digits)"
        return FormulaError(message, column=self.token.column)

    def reciprocal(self, divisor: sp.Expr, token: Token) -> sp.Expr:
        check_constant(divisor, token.column)
        # structural test: an assumption query could recurse deep into the divisor
        if divisor == 0:
            raise FormulaError("division by zero", column=token.column)
        return sp.Pow(divisor, -1)

    def starts_factor(self) -> bool:
        token = self.token
        if token.kind in ("number", "letters"):
            return True
        if token.kind == "op":
            return token.text in "([{"
        if token.kind != "command":
            return False
        name = token.text[1:]
        if name in SIZES:
            return name in OPEN_SIZES and self.peek().text in CLOSE
        return name not in PRODUCTS and name not in ("right", "prime")

    def factor(self, signed: bool) -> sp.Expr:
        negative = False
        while signed and (self.at("+") or self.at("-")):
            negative ^= self.advance().text == "-"
        value, scripted = self.atom()
        if self.at("^") and not scripted:
            caret = self.advance()
            value = _power(value, self.script_expression(), caret.column)
        if self.at("^"):
            raise self.error("expected an operator (double superscript)")
        if self.at("_"):
            raise self.error("a subscript must follow a name; expected an operator")
        if self.at("'"):
            raise FormulaError("a prime ' is only understood in \\sigma'(...)", column=self.token.column)
        return -value if negative else value

    def atom(self) -> tuple[sp.Expr, bool]:
        """An operand, and whether it has already read its own superscript."""
        token = self.token
        if token.kind == "number":
            self.advance()
            return _number(token), False
        if self.prime_applied():  # f'(z), g^{\prime}(z), \dot{\sigma}(z): the activation's derivative
            return self.activation("sigma_prime"), False
        if token.kind == "letters":
            return self.name()
        if self.at("{"):
            return self.braced("{"), False
        name = token.text[1:] if token.kind == "command" else ""
        if self.at("(") or self.at("[") or name == "left" or name in OPEN_SIZES:
            return self.delimited(args=False)[0], False
        if name in ("frac", "dfrac", "tfrac"):
            return self.fraction(), False
        if name == "partial":
            self.advance()
            quantity = self.derivative_operand()
            if not self.at("/"):
                raise self.error(f"expected '/' after '\\partial {quantity}'")
            self.advance()
            self.expect(r"\partial")
            return self.derivative(quantity, self.derivative_name(), token), False
        if name == "sum":
            return self.sum(), False
        if name == "sigma" and not self.sigma_applied():
            return self.name()
        if name in FUNCTIONS:
            return self.function(), False
        if name in GREEK or name in DECORATIONS or name in WORDS:
            return self.name()
        raise self.error("expected a name, a number or '('")

    def braced(self, label: str) -> sp.Expr:
        self.expect("{")
        self.enter()
        value = self.expression()
        self.expect("}", closing=label)
        self.depth -= 1
        return value

    def argument(self, label: str) -> sp.Expr:
        """The argument of `\\frac` or `\\sqrt`: braces, or one digit or letter as in `\\frac12`."""
        if self.at("{"):
            return self.braced(label)
        if self.token.kind == "number":
            return _number(self.first_char())
        if self.token.kind == "letters":
            return self.bare(self.first_char())
        raise self.error(f"expected '{{' after '{label[:-1]}'")

    def delimited(self, args: bool) -> list[sp.Expr]:
        """`( )`, `[ ]`, `\\left( \\right)` or a sized pair such as `\\bigl( \\bigr)`."""
        opener = self.advance()
        left = opener.text == r"\left"
        if opener.kind == "command":
            if self.token.text not in CLOSE or self.token.kind != "op":
                raise self.error(f"expected '(' or '[' after '{opener.text}'")
            label = opener.text + self.advance().text
        else:
            label = opener.text
        close = CLOSE[label[-1]]
        self.enter()
        items = [self.expression()]
        if not args and close == "]" and self.at("="):  # Iverson's bracket: [a^F_{1,11} = \max]
            items = [self.indicator(items[0])]
        while args and self.at(","):
            self.advance()
            items.append(self.expression())
        if left:
            if not (self.at(r"\right") and self.at(close, self.peek())):
                raise self.error(f"expected '\\right{close}' to close '{label}'")
            self.advance()
        elif self.token.text[1:] in CLOSE_SIZES and self.at(close, self.peek()):
            self.advance()
        elif not self.at(close):
            raise self.error(f"expected '{close}' to close '{label}'")
        self.advance()
        self.depth -= 1
        return items

    def indicator(self, element: sp.Expr) -> sp.Expr:
        """`[a = \\max]`: 1 where a is the maximum of its pooling window, else 0 (`[a = a^P_{1,11}]` names the window)."""
        equals = self.advance()
        if self.at(r"\max"):
            self.advance()
            args = [element]
        elif self.token.kind in ("letters", "command") and not self.at("]"):
            args = [element, self.expression()]
        else:
            raise self.error("expected \\max (as in [a^F_{1,11} = \\max]) after '='")
        return self.call("ismax", args, Token("command", "[ = \\max]", equals.column))

    def fraction(self) -> sp.Expr:
        command = self.advance()
        label = command.text + "{"
        self.enter()  # counts twice: a fraction costs more Python frames than a bracket
        if self.at("{") and self.at(r"\partial", self.peek()):
            value = self.derivative_fraction(command, label)
        else:
            numerator = self.argument(label)
            token = self.token
            value = _bounded(sp.Mul(numerator, self.reciprocal(self.argument(label), token)), command.column)
        self.depth -= 1
        return value

    def derivative_fraction(self, command: Token, label: str) -> sp.Expr:
        self.enter()
        self.advance()  # '{'
        self.advance()  # '\partial'
        operand_follows = self.at("}")
        quantity = None if operand_follows else self.derivative_operand()
        self.expect("}", closing=label)
        self.expect("{")
        self.expect(r"\partial")
        variable = self.derivative_name()
        self.expect("}", closing=label)
        if operand_follows:  # \frac{\partial}{\partial w} ½ (t - a)^2: the whole product that follows
            quantity = self.product(signed=False)
        self.depth -= 1
        return self.derivative(quantity, variable, command)

    def derivative_operand(self) -> sp.Expr:
        """What `\\partial` is applied to: a name, or a bracketed expression `\\partial (t - a)^2`."""
        if not self.opens_bracket():
            return self.derivative_name()
        self.enter()
        value = self.delimited(args=False)[0]
        if self.at("^"):
            caret = self.advance()
            value = _power(value, self.script_expression(), caret.column)
        self.depth -= 1
        return value

    def derivative_name(self) -> sp.Expr:
        token = self.token
        if token.kind == "letters" or token.text[1:] in set(GREEK) | set(DECORATIONS) | WORDS:
            return self.name()[0]
        raise self.error("expected a name after '\\partial'")

    def derivative(self, quantity: sp.Expr, variable: sp.Expr, token: Token) -> sp.Expr:
        try:
            return self.vocabulary.function("D")([quantity, variable])
        except (ValueError, TypeError, LookupError) as exc:
            raise FormulaError(f"derivative: {error_message(exc)}", column=token.column) from None

    # -- functions -------------------------------------------------------------------
    def sigma_applied(self) -> bool:
        """Whether `\\sigma` here is the activation applied (σ(z), σ'(z), σ^2(z)) or a name."""
        start = self.pos
        self.pos += 1
        try:
            if self.at("'"):
                return True
            if self.at("^"):
                following = self.peek()
                if self.at(r"\prime", following) or (self.at("{", following) and self.at(r"\prime", self.peek(2))):
                    return True
                self.advance()
                self.plain_script()  # skip it, to see whether a bracket follows
            return self.opens_bracket()
        finally:
            self.pos = start

    def prime_applied(self) -> bool:
        """Whether a primed letter is applied here: `f'(z)`, `g^{\\prime}(z)`, `\\phi'(z)`, or `\\dot{\\sigma}(z)`."""
        token = self.token
        if token.kind == "command" and token.text == r"\dot":
            return True
        if not ((token.kind == "letters" and len(token.text) == 1)
                or (token.kind == "command" and token.text[1:] in GREEK and token.text != r"\sigma")):
            return False
        start = self.pos
        self.pos += 1
        try:
            if not self.skip_prime():
                return False
            if self.at("'") or (self.at("^") and (self.at(r"\prime", self.peek()) or self.at("{", self.peek()))):
                raise FormulaError(f"only the first derivative {token.text}' is understood", column=self.token.column)
            return self.opens_bracket()
        finally:
            self.pos = start

    def skip_prime(self) -> bool:
        """Pass `'`, `^\\prime` or `^{\\prime}` if one is here, without spending steps (a look-ahead)."""
        if self.at("'"):
            self.pos += 1
        elif self.at("^") and self.at(r"\prime", self.peek()):
            self.pos += 2
        elif self.at("^") and self.at("{", self.peek()) and self.at(r"\prime", self.peek(2)) and self.at("}", self.peek(3)):
            self.pos += 4
        else:
            return False
        return True

    def activation(self, function: str, first: Token | None = None) -> sp.Expr:
        """`f'(z)`, `\\dot{\\sigma}(z)` (the activation's derivative), or `f(z)` when f names nothing (the activation)."""
        first = first or self.advance()  # f in f(z) is read already
        shown = first.text
        if first.text == r"\dot":
            braced = self.at("{")
            if braced:
                self.advance()
            letter = self.token
            if letter.text not in (r"\sigma", "f", "g"):
                raise self.error(r"\dot is understood only as the activation's derivative \dot{\sigma}(...); expected "
                                 r"\sigma", letter)
            self.advance()
            if braced:
                self.expect("}", closing=r"\dot{")
            shown = rf"\dot{{{letter.text}}}"
        elif function == "sigma_prime":
            start = self.pos
            self.skip_prime()
            self.steps += self.pos - start
            shown += "'"
        if not self.opens_bracket():
            raise self.error(f"expected '(' after {shown}")
        self.enter()
        args = self.delimited(args=True)
        self.depth -= 1
        return self.call(function, args, Token("command", shown, first.column))

    def opens_bracket(self) -> bool:
        name = self.token.text[1:]
        if self.at("(") or self.at("["):
            return True
        return (name == "left" or name in OPEN_SIZES) and self.peek().text in CLOSE

    def function(self) -> sp.Expr:
        command = self.advance()
        name = command.text[1:]
        power = None
        if name == "sigma" and self.at("'"):
            self.advance()
            name = "sigma_prime"
            if self.at("'"):
                raise FormulaError("only the first derivative \\sigma' is understood", column=self.token.column)
        elif name == "sigma" and self.at("^") and (self.at(r"\prime", self.peek()) or self.at("{", self.peek())
                                                   and self.at(r"\prime", self.peek(2))):
            self.advance()  # '^'
            if self.at("{"):
                self.advance()
                self.advance()  # \prime
                self.expect("}", closing="^{")
            else:
                self.advance()  # \prime
            name = "sigma_prime"
        elif self.at("^"):  # \tanh^2(z) is (tanh z)^2
            caret = self.advance()
            power = self.script_expression()
            if not (power.is_Integer and power > 0):
                raise FormulaError(f"expected a positive integer power of {command.text}", column=caret.column)
        if name == "sqrt":
            if self.at("["):
                raise FormulaError("\\sqrt[n]{...} is not supported (write x^{1/n})", column=self.token.column)
            self.enter()
            args = [self.argument(r"\sqrt{")]
            self.depth -= 1
        elif self.opens_bracket():
            self.enter()
            args = self.delimited(args=True)
            self.depth -= 1
        else:
            raise self.error(f"expected '(' after {command.text}")
        value = self.call(name, args, command)
        return value if power is None else _power(value, power, command.column)

    def call(self, name: str, args: list, token: Token) -> sp.Expr:
        try:
            return self.vocabulary.function(name)(args)
        except FormulaError as exc:
            if exc.column is not None:
                raise
            raise FormulaError(f"{token.text}: {exc.message}", column=token.column) from None
        except (ValueError, TypeError, LookupError) as exc:
            raise FormulaError(f"{token.text}: {error_message(exc)}", column=token.column) from None


def _bounded(value: sp.Expr, column: int) -> sp.Expr:
    """Refuse a product whose number would be huge (9^{64} 9^{64} ...), as `_power` does for powers."""
    number = value.as_coeff_Mul()[0]
    if number.is_Rational and max(abs(number.p), number.q).bit_length() > MAX_EXACT_DIGITS * 3.33:
        raise FormulaError(f"a number in the formula would have more than {MAX_EXACT_DIGITS:,} digits", column=column)
    return value

