import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the oracles module

from derive import Derivations, builtin_names, load  # noqa: E402

DATA = Path(__file__).parent / "data"


# The built-in networks with a per-example symbolic graph. Stack networks (digits-batchnorm,
# lookup-attention) have none: their kernels come from formula sets proven for every size, and
# tests/test_stack.py checks them against PyTorch and finite differences.
SYMBOLIC_BUILTINS = [name for name in builtin_names() if load(name).kind != "stack"]


@pytest.fixture(scope="session")
def builtin_networks():
    return {name: load(name) for name in SYMBOLIC_BUILTINS}


@pytest.fixture(scope="session")
def derivations(builtin_networks):
    return {name: Derivations(net) for name, net in builtin_networks.items()}
