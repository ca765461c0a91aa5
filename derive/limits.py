"""The sizes `derive` accepts, in one place (SECURITY.md lists them; a test checks it does).

Each limit is checked before the work it bounds is built, so a file of a few
hundred bytes cannot claim hours or gigabytes. They are set from measurements
on the project's 2-core machine: the largest accepted network of each kind is
derived and proven within about 20 s and 2 GB (784-100-10, 79,510 parameters,
takes 13 s).
"""

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
