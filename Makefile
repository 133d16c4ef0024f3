# kvsite: `make run` starts a local three-node cluster; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv run test test-sqlite test-postgres lint format bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

run: venv
	$(BIN)/kvs up

# Lint, then the suite on SQLite, then again on a throwaway PostgreSQL (when one can be started):
# the unit suite, and the multi-node tests whose locking and transactions differ by database.
PG_INTEGRATION := tests/integration/test_replication.py tests/integration/test_queries.py
test: venv lint test-sqlite test-postgres

test-sqlite: venv
	$(BIN)/pytest

test-postgres: venv
	@if scripts/with-postgres true 2>/dev/null; then \
		scripts/with-postgres sh -c '$(BIN)/pytest -m "not integration" && $(BIN)/pytest $(PG_INTEGRATION)'; \
	elif [ "$$CI" = "true" ]; then \
		echo "test-postgres: PostgreSQL cannot be started here; under CI that is a failure" >&2; \
		scripts/with-postgres true; exit 1; \
	else \
		echo "test-postgres: no PostgreSQL binaries here (apt-get install postgresql); skipped"; \
	fi

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: venv
	$(BIN)/python bench/kv_bench.py

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache
