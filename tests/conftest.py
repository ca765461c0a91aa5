import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the oracles module

from derive import Derivations, builtin_names, load  # noqa: E402

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def builtin_networks():
    return {name: load(name) for name in builtin_names()}


@pytest.fixture(scope="session")
def derivations(builtin_networks):
    return {name: Derivations(net) for name, net in builtin_networks.items()}
