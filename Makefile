# `make demo`: set up .venv and run the built-in default job. `make test`: set up and run the tests.
VENV ?= .venv

.PHONY: setup demo test bench
setup: $(VENV)/.ready

$(VENV)/.ready: pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh
	touch $@

demo: setup
	$(VENV)/bin/latentloop train cpu-sudoku6

test: setup
	$(VENV)/bin/python -m pytest

bench: setup
	$(VENV)/bin/python benchmarks/throughput.py
