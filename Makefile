# The two commands of the README: `make run` and `make test`. Everything else is a step they take.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test setup models system-deps

# The venv is rebuilt when pyproject.toml changes. torch comes from the pinned CPU wheel (see pyproject).
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[export,test,bench,redis]'
	touch $@

setup: $(VENV)/.installed

# Trains (first time, a few minutes), exports and verifies the built-in models; cached afterwards.
models: setup
	$(PY) export_models.py --builtin

run: models
	$(VENV)/bin/meeshy-appliance serve

# redis-server backs the Redis cache-level tests; installed when missing and we may (root + apt).
system-deps:
	@command -v redis-server >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } || \
		echo "redis-server not installed: the Redis cache tests will be skipped"

test: system-deps models
	$(PY) -m pytest
