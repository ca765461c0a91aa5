"""Errors that reach the user as one clear line (exit code 2), never as a traceback."""

from __future__ import annotations


class DeriveError(Exception):
    """Base of every error `derive` reports to its user."""


class InputError(DeriveError):
    """Bad input: a spec, claims or formula file, a formula string, a command-line value.

    `where` names the file and the key (`two.toml: [equations] neth1`), `column`
    is 1-based within the offending string when the fault is a syntax error.
    """

    def __init__(self, message: str, *, where: str | None = None, column: int | None = None):
        self.message = message
        self.where = where
        self.column = column
        super().__init__(str(self))

    def located(self, where: str) -> "InputError":
        """The same error (of the same kind), placed in a file and key the caller knows about."""
        inner = f"{where}: {self.where}" if self.where else where
        return type(self)(self.message, where=inner, column=self.column)

    def __str__(self) -> str:
        parts = []
        if self.where:
            parts.append(self.where)
        if self.column is not None:
            parts.append(f"column {self.column}")
        prefix = ", ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class FormulaError(InputError):
    """A formula string that the whitelist parser rejects."""


class ReadingFault(FormulaError):
    """A formula that cannot be read as written at any values of its index letters: a name that reads two
    ways, an index letter standing as an exponent, a sum bound naming another layer. Unlike a name the
    network lacks at some values (those values are outside the claim's range), it is the claim's fault."""
