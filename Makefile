# crmhub: two commands for a new user.
#   make demo   set everything up and run the whole hub with live demo traffic (Ctrl-C stops it)
#   make test   lint, type-check and run the whole test suite (what .ci/run calls)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: demo up test lint unit integration fuzz bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/crmhub demo $(ARGS)

up: $(STAMP)
	$(BIN)/crmhub up $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/python tools/code_size.py --check

unit: $(STAMP)
	$(BIN)/pytest tests/unit -q

test: lint  # two workers, a test module each at a time: most integration tests spend their time waiting
	$(BIN)/pytest -q -ra -n 2 --dist loadfile

fuzz: $(STAMP)  # explore anew: random seeds, many cases (the suite replays a fixed seed)
	CRMHUB_FUZZ_EXAMPLES=$${CRMHUB_FUZZ_EXAMPLES:-5000} $(BIN)/pytest -q tests/unit -k fuzz

bench: $(STAMP)  # every figure of DESIGN §9 beside its target; ARGS=--quick: small sizes, under 3 minutes
	$(BIN)/python benchmarks/suite.py $(ARGS)

clean:
	rm -rf $(VENV) .crmhub .pytest_cache .mypy_cache .ruff_cache
