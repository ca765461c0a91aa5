# Two entry points for a fresh machine with only Python 3.11:
#   make demo   set up, then derive and prove the built-in textbook networks
#   make test   set up, then run the whole test suite (CI runs this)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: setup
	$(BIN)/derive list
	$(BIN)/derive derive two-two-two
	$(BIN)/derive prove two-two-two
	$(BIN)/derive prove book-12-3-2
	$(BIN)/derive prove generic-3-4-4-2

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/derive_prove.py

clean:
	rm -rf $(VENV) dist build
