# Two entry points: `make run` (fresh machine -> serving the default model) and `make test`
# (fresh machine -> whole suite). The venv is built once; pip reuses its wheel cache, so the
# llama-cpp-python compile (about 4 minutes on 2 cores) happens only on a machine's first build.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.openzoo-installed
JS_DIR := tests/integration/js
JS_STAMP := $(JS_DIR)/node_modules/.openzoo-installed
# The web UI's browser tests drive Debian's Chromium through Playwright (never `playwright install`).
CHROMIUM := /usr/bin/chromium
CHROMIUM_STAMP := $(VENV)/.chromium-installed
# The OCI push/pull tests run the CNCF distribution server from Debian (its systemd unit is not used).
REGISTRY := /usr/bin/docker-registry
REGISTRY_STAMP := $(VENV)/.docker-registry-installed
# The catalog tests run against a real PostgreSQL 15 (Debian's server binaries; tests/support/postgres.py).
POSTGRES := /usr/lib/postgresql/15/bin/postgres
POSTGRES_STAMP := $(VENV)/.postgres-installed
# The OCI format tests read what openzoo pushes with an independent client: Debian's skopeo.
SKOPEO := /usr/bin/skopeo
SKOPEO_STAMP := $(VENV)/.skopeo-installed
# The C2SP log tests build a checker against Go's reference sumdb/note and sumdb/tlog, offline (GOPATH mode).
GO_XMOD := /usr/share/gocode/src/golang.org/x/mod/sumdb/tlog
GO_STAMP := $(VENV)/.golang-x-mod-installed
export CMAKE_BUILD_PARALLEL_LEVEL ?= 2

.PHONY: run test lint typecheck docs bench bench-peer bench-traffic clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,finetune,scale]'
	touch $(STAMP)

$(JS_STAMP): $(JS_DIR)/package.json
	cd $(JS_DIR) && npm install --no-audit --no-fund --loglevel=error
	touch $(JS_STAMP)

$(CHROMIUM_STAMP): $(STAMP)
	test -x $(CHROMIUM) || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)
	touch $(CHROMIUM_STAMP)

$(REGISTRY_STAMP): $(STAMP)
	test -x $(REGISTRY) || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y docker-registry)
	touch $(REGISTRY_STAMP)

$(POSTGRES_STAMP): $(STAMP)
	test -x $(POSTGRES) || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql)
	touch $(POSTGRES_STAMP)

$(SKOPEO_STAMP): $(STAMP)
	test -x $(SKOPEO) || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y skopeo)
	touch $(SKOPEO_STAMP)

$(GO_STAMP): $(STAMP)
	(command -v go && test -d $(GO_XMOD)) || (apt-get update && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y golang-go golang-golang-x-mod-dev)
	touch $(GO_STAMP)

run: $(STAMP)
	$(VENV)/bin/openzoo serve

test: $(STAMP) $(JS_STAMP) $(CHROMIUM_STAMP) $(REGISTRY_STAMP) $(POSTGRES_STAMP) $(GO_STAMP) $(SKOPEO_STAMP)
	$(PY) -m pytest -p no:cacheprovider

# ruff, mypy --strict, the import-linter contracts of pyproject.toml (the layers of docs/architecture.md)
# and vulture's dead-code check ([tool.vulture]).
lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/vulture

# openzoo against llama.cpp's C++ llama-server at 1, 4 and 8 streaming clients. The server is built once
# (about 8 minutes on 2 cores) from the llama.cpp sources in the pinned llama-cpp-python sdist, into
# ~/.cache/openzoo/llama-server-<version>/, and reused from there.
bench-peer: $(STAMP)
	bin=$$(bench/build_llama_server.sh $(PY)) && \
	PYTHONPATH=src $(PY) bench/concurrency.py --levels 1,4,8 --no-baselines --llama-server "$$bin"

# The traffic of issue 20 against llama-server, one workload after another (bench/workloads.py).
bench-traffic: $(STAMP)
	bin=$$(bench/build_llama_server.sh $(PY)) && \
	PYTHONPATH=src $(PY) bench/concurrency.py --workload varied --llama-server "$$bin" \
	  --compare-env OPENZOO_GUESS_TOKENS=0 --compare-env OPENZOO_BATCH_INVARIANT=0 && \
	for w in prefill chat; do PYTHONPATH=src $(PY) bench/concurrency.py --workload $$w --llama-server "$$bin" \
	  --compare-env OPENZOO_BATCH_INVARIANT=0 || exit 1; done && \
	for w in mixed defaults; do \
	PYTHONPATH=src $(PY) bench/concurrency.py --workload $$w --llama-server "$$bin" || exit 1; done

docs: $(STAMP)
	$(VENV)/bin/openzoo config --markdown > docs/configuration.md

clean:
	rm -rf $(VENV) $(JS_DIR)/node_modules
