# The two commands of the README: `make run` and `make test`. Everything else is a step they take.
VENV := .venv
PY := $(VENV)/bin/python
# Apertium, the rule-based engine behind the `fallback` tier, and its language data: en<->es and
# fr<->es, then the pairs that join them through Spanish and English (pt, it, ca, gl <-> es,
# en <-> ca, ro -> es; workers/apertium.py DEBIAN_PACKAGES): 16 MB of archives, ~7 s of apt-get.
APERTIUM_PACKAGES := apertium apertium-eng-spa apertium-fr-es apertium-es-pt apertium-spa-ita \
	apertium-spa-cat apertium-es-gl apertium-eng-cat apertium-es-ro

.PHONY: run test setup models system-deps apertium npm-clients

# The venv is rebuilt when pyproject.toml changes. torch comes from the pinned CPU wheel (see pyproject).
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[export,test,bench,redis]'
	touch $@

setup: $(VENV)/.installed

# Trains (first time, a few minutes), exports and verifies the built-in models; cached afterwards.
# Then registers the installed Apertium modes (en, es, fr, pt, it, ca, gl, ro) as the rule-based fallback tier.
models: setup
	$(PY) export_models.py --builtin
	@if command -v apertium >/dev/null; then $(PY) export_models.py --apertium; else \
		echo "Apertium not installed: only the built-in models are served (apt-get install $(APERTIUM_PACKAGES))"; fi

run: apertium models
	$(VENV)/bin/meeshy-appliance serve

# The Debian packages missing from APERTIUM_PACKAGES, installed when we may (root + apt), as redis-server.
apertium:
	@missing=$$(for p in $(APERTIUM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	[ -z "$$missing" ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } || \
		echo "Apertium packages not installed ($$missing): the rule-based fallback and its tests are skipped"

# redis-server backs the Redis cache-level tests; installed when missing and we may (root + apt).
system-deps: apertium
	@command -v redis-server >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } || \
		echo "redis-server not installed: the Redis cache tests will be skipped"

# The npm LibreTranslate client that a test runs against the HTTP port (skipped without npm).
npm-clients:
	@if command -v npm >/dev/null; then cd tests/appliance/npm && npm install --no-audit --no-fund --silent; else \
		echo "npm not installed: the npm LibreTranslate client test is skipped"; fi

test: system-deps models npm-clients
	$(PY) -m pytest
