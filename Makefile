# symce — the two set-up commands are `make install` and `make test`.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
APT_PACKAGES = octave texlive-latex-base texlive-latex-recommended texlive-pictures latexmk gcc g++ clang

.PHONY: install install-python install-tools derive check-generated pdf test lint format test-asan accuracy bench bench-library clean

install: install-python install-tools

install-python:
	$(PIP) install --quiet -e '.[test,parity]'

# Octave runs the MATLAB tests; pdflatex (with latexmk and pgfplots) builds the proofs' PDF; gcc, g++ and clang build
# the C tests (tests/c_build.py). Debian/Ubuntu only, needs root (or sudo); elsewhere install them by hand — the tests
# that need them skip with a reason.
install-tools:
	@if command -v octave-cli >/dev/null && command -v pdflatex >/dev/null && \
	    command -v latexmk >/dev/null && kpsewhich pgfplots.sty >/dev/null && \
	    command -v gcc >/dev/null && command -v g++ >/dev/null && command -v clang >/dev/null; then \
	  echo "octave-cli, pdflatex, latexmk, pgfplots, gcc, g++ and clang already installed"; \
	elif command -v apt-get >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	else \
	  echo "no apt-get: install GNU Octave (>= 7), pdflatex, g++ and clang yourself for the Octave, PDF and C tests"; \
	fi

derive:
	$(PYTHON) -m symce derive

check-generated:
	$(PYTHON) -m symce derive --check

# latexmk reruns pdflatex until the contents and references settle; fails on an overfull line,
# an undefined reference or a table of contents that does not match the pages
pdf: derive
	$(PYTHON) -m symce.pdf generated/latex

# pytest-xdist: one worker per core, idle workers take tests from busy ones; TEST_WORKERS=0 runs in
# one process (the C builds' cache and the wheel's build are shared safely: tests/c_build.py)
TEST_WORKERS ?= auto
test:
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS) --dist worksteal

# ruff (configured in pyproject.toml): lint, and formatting checked; `make format` applies it
lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

test-asan:
	$(PYTHON) -m pytest -q tests/test_c_sanitizers.py

accuracy:
	$(PYTHON) bench/accuracy.py

# make bench QUICK=1: the float32 cases of the closing line, under 90 s
bench:
	$(PYTHON) bench/speed.py $(if $(filter 1 yes true,$(QUICK)),--quick)

# the library's declared functions (symce/library) beside PyTorch; QUICK=1: float32 only
bench-library:
	$(PYTHON) bench/library.py $(if $(filter 1 yes true,$(QUICK)),--quick)

clean:
	rm -rf build *.egg-info .pytest_cache generated/latex/*.aux generated/latex/*.log generated/latex/*.out generated/latex/*.pdf generated/latex/*.toc \
	  generated/latex/*.fls generated/latex/*.fdb_latexmk
