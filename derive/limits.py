"""The sizes `derive` accepts, in one place (SECURITY.md lists them; a test checks it does).

Each limit is checked before the work it bounds is built, so a file of a few
hundred bytes cannot claim hours or gigabytes. They are set from measurements
on the project's 2-core machine: the largest accepted network of each kind is
derived and proven within about 20 s and 2 GB (784-100-10, 79,510 parameters,
takes 13 s).
"""

import math

from derive.errors import InputError

MAX_SPEC_BYTES = 5_000_000
MAX_CLAIMS_BYTES = 2_000_000
MAX_FORMULA_SET_BYTES = 1_000_000
MAX_TEMPLATE_BYTES = 1_000_000

# Networks: connections are the terms of every net input (a weight times its
# source, a pooling window's members), counted layer by layer before a layer is built.
MAX_CONNECTIONS = 100_000
MAX_PARAMETERS = 100_000
MAX_LAYERS = 200
MAX_INPUT_VALUES = 100_000
MAX_EQUATIONS = 20_000  # of a free-form spec; its longest chain counts against MAX_LAYERS

# A closed form is printed (text, LaTeX, JSON) only up to this many symbols;
# past it the output says "(omitted: N symbols long)" and the recurrences,
# one step deep, carry the derivative. Closed forms grow exponentially with depth.
MAX_PRINTED_SIZE = 200_000

# Training settings (derive train's options and a spec's [train] table).
MAX_EPOCHS = 1_000_000
MAX_BATCH = 1 << 20


def check_settings(*, epochs: int, batch: int, lr: float, momentum: float, lmbda: float = 1.0) -> None:
    """One InputError naming every setting out of range (NaN and infinities included)."""
    wrong = []
    if not 0 <= epochs <= MAX_EPOCHS:
        wrong.append(f"--epochs from 0 to {MAX_EPOCHS:,} (got {epochs})")
    if not 1 <= batch <= MAX_BATCH:
        wrong.append(f"--batch from 1 to {MAX_BATCH:,} (got {batch})")
    if not (math.isfinite(lr) and lr > 0):
        wrong.append(f"--lr a finite number > 0 (got {lr:g})")
    if not (math.isfinite(momentum) and 0 <= momentum < 1):
        wrong.append(f"--momentum with 0 ≤ μ < 1 (got {momentum:g})")
    if not (math.isfinite(lmbda) and lmbda >= 0):
        wrong.append(f"--lmbda a finite number ≥ 0 (got {lmbda:g})")
    if wrong:
        raise InputError("need " + "; ".join(wrong))
