# symce — the two set-up commands are `make install` and `make test`.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
APT_PACKAGES = octave texlive-latex-base texlive-latex-recommended

.PHONY: install install-python install-tools derive check-generated pdf test test-asan accuracy bench clean

install: install-python install-tools

install-python:
	$(PIP) install --quiet -e '.[test,parity]'

# Octave runs the MATLAB tests; pdflatex builds the proofs' PDF. Debian/Ubuntu only, needs root
# (or sudo); elsewhere install them by hand — the tests that need them skip with a reason.
install-tools:
	@if command -v octave-cli >/dev/null && command -v pdflatex >/dev/null; then \
	  echo "octave-cli and pdflatex already installed"; \
	elif command -v apt-get >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES); \
	else \
	  echo "no apt-get: install GNU Octave (>= 7) and pdflatex yourself for the Octave and PDF tests"; \
	fi

derive:
	$(PYTHON) -m symce derive

check-generated:
	$(PYTHON) -m symce derive --check

pdf: derive
	cd generated/latex && pdflatex -interaction=nonstopmode -halt-on-error symce_derivations.tex >/dev/null && \
	  pdflatex -interaction=nonstopmode -halt-on-error symce_derivations.tex >/dev/null && \
	  echo "generated/latex/symce_derivations.pdf"

test:
	$(PYTHON) -m pytest -q

test-asan:
	$(PYTHON) -m pytest -q tests/test_c_sanitizers.py

accuracy:
	$(PYTHON) bench/accuracy.py

# make bench QUICK=1: the float32 cases of the closing line, under 90 s
bench:
	$(PYTHON) bench/speed.py $(if $(filter 1 yes true,$(QUICK)),--quick)

clean:
	rm -rf build *.egg-info .pytest_cache generated/latex/*.aux generated/latex/*.log generated/latex/*.out generated/latex/*.pdf generated/latex/*.toc
