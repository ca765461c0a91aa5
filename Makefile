# Two entry points for a fresh machine with only Python 3.11:
#   make demo   set up, then derive and prove the built-in textbook networks, and write a report
#   make test   set up, then run the whole test suite (CI runs this)
# Set-up makes .venv and installs TeX from Debian's packages (reports compile to
# PDF; the tests read those PDFs back), with sudo unless run as root.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Keep in step with DEBIAN_PACKAGES in derive/tex.py (a test checks).
TEX_PACKAGES := latexmk texlive-latex-base texlive-latex-recommended texlive-pictures texlive-xetex \
                texlive-lang-chinese lmodern fonts-noto-cjk fonts-dejavu-core poppler-utils

# Headless Chromium and its WebDriver for the browser tests of derive serve (Selenium drives them).
BROWSER_PACKAGES := chromium chromium-driver

.PHONY: setup tex browser demo test bench serve clean

setup: $(STAMP) tex browser

browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then \
	  echo "browser: chromium and chromedriver are installed"; \
	else \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $(BROWSER_PACKAGES); \
	fi

# Installs only what is missing: a second run costs a few checks.
tex:
	@if command -v latexmk >/dev/null && command -v xelatex >/dev/null && command -v pdftotext >/dev/null \
	    && kpsewhich xeCJK.sty lmodern.sty pgfplots.sty >/dev/null \
	    && fc-list | grep -q "Noto Serif CJK SC" && fc-list | grep -q "DejaVu Sans"; then \
	  echo "TeX: latexmk, XeLaTeX, xeCJK, pgfplots and the fonts are installed"; \
	else \
	  $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $(TEX_PACKAGES); \
	fi

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
	$(BIN)/derive report two-two-two --explain w1 -o two-two-two-report.pdf

test: setup
	$(BIN)/python -m pytest -q -n 2

serve: setup
	$(BIN)/derive serve --assignment examples/class/assignment.toml

bench: setup
	$(BIN)/python benchmarks/derive_prove.py

clean:
	rm -rf $(VENV) dist build
