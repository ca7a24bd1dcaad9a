# grokterm: `make run` opens the TUI (creating .venv on first use); `make test` runs the tests.
# `make demo` runs the CPU demo headless.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run demo test bench lint clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/grokterm

demo: $(STAMP)
	$(BIN)/grokterm run modadd-mlp

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_throughput.py
	$(BIN)/python benchmarks/bench_tui.py
	$(BIN)/python benchmarks/bench_streams.py
	$(BIN)/python benchmarks/bench_htsr.py

lint: $(STAMP)
	$(BIN)/ruff check grokterm tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
