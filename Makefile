# The two commands the README opens with: `make rehearse` and `make test`.
# Both install what they need: Debian packages, npm packages, a Python 3.12 virtualenv.

SHELL := /bin/bash
export PYENV_VERSION ?= 3.12.1
PYTHON ?= python3.12
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := postgresql-15 postgresql-contrib pgbouncer openssh-server iproute2 python3-venv chromium cron
NPM_PACKAGES := pm2@6 pnpm@9
TEST_USER := handled-test
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: test rehearse lint typecheck deps system-deps python-deps bench clean

test: deps lint typecheck
	$(BIN)/pytest

rehearse: deps
	$(BIN)/python -m rehearsal $(ARGS)

lint: python-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: python-deps
	$(BIN)/mypy

bench: deps
	$(BIN)/python -m bench.split_benchmark $(ARGS)

deps: system-deps python-deps

# Debian packages and the unprivileged user that runs the test servers (PostgreSQL refuses root).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v node >/dev/null || { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm >/dev/null; }
	@command -v pm2 >/dev/null && command -v pnpm >/dev/null || { echo "installing $(NPM_PACKAGES)"; $(SUDO) npm install -g --silent $(NPM_PACKAGES) >/dev/null; }
	@id -u $(TEST_USER) >/dev/null 2>&1 || $(SUDO) useradd --system --create-home --shell /bin/bash $(TEST_USER)

python-deps: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,infra,deploy]'
	@touch $@

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
