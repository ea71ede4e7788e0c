# The two commands of the README: `make run` and `make test`. Every target builds .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COMPILED := $(VENV)/.compiled
SOURCES := $(shell find src/quantdesk -name '*.py')

.PHONY: run backtest build pure test lint typecheck unit bench clean

# Installed editable and pure; `build` then compiles the hot path in place.
$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	QUANTDESK_PURE=1 $(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The hot-path modules (src/quantdesk/_compiled.py) compiled to C with mypyc, next to their
# sources; again after any source changes. The touch marks every extension as built from the
# sources of now, also those whose C came out unchanged (quantdesk refuses stale ones at import).
$(COMPILED): $(STAMP) setup.py $(SOURCES)
	$(BIN)/python setup.py --quiet build_ext --inplace
	find src -name '*.so' -exec touch {} +
	touch $(COMPILED)

build: $(COMPILED)

# Back to pure Python until the next build (`make test` and `make run` build): then
# `QUANTDESK_PURE=1 .venv/bin/pytest` runs the suite on the pure sources.
pure:
	find src -name '*.so' -delete
	rm -f $(COMPILED)

run: $(COMPILED)
	$(BIN)/quantdesk paper --speed 60

backtest: $(COMPILED)
	$(BIN)/quantdesk backtest --strategy sma_cross --data sample:GOOG --qty 100 \
		--cash 100000 --json out/sma_cross_goog.json --report out/sma_cross_goog.html

lint: $(STAMP)
	$(BIN)/ruff check setup.py src tests benchmarks
	$(BIN)/ruff format --check setup.py src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: $(COMPILED)
	$(BIN)/pytest -q

test: lint unit

bench: $(COMPILED)
	$(BIN)/python benchmarks/bench_engine.py

clean:
	rm -rf $(VENV) out build .pytest_cache .mypy_cache .ruff_cache
	find src -name '*.so' -delete
