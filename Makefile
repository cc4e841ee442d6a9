# Outrider developer Makefile. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help
PY ?= .venv/bin/python
VENV_BIN := .venv/bin
PYTEST_ARGS ?=
GENERATED := crds charts/outrider/crds charts/outrider/files manifests/install docs/api-reference.md

##@ General
.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z0-9_-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development
.PHONY: setup
setup: ## Create .venv and install the locked dependencies (uv) plus Outrider in editable mode.
	bash hack/setup-venv.sh

.PHONY: setup-system
setup-system: ## Install the Debian packages the tests need (prometheus, promtool); needs root.
	bash hack/setup-system.sh

.PHONY: lock
lock: ## Re-resolve requirements.lock (everything) and the images' locks (deploy/image/*.in, pinned to it).
	uv pip compile pyproject.toml --all-extras --python 3.11 -o requirements.lock -q
	for image in runtime runtime-gpu control; do \
	  uv pip compile deploy/image/$$image.in --python 3.11 -c requirements.lock -o requirements-$$image.lock -q; \
	done

.PHONY: lint
lint: ## ruff, ruff format, mypy --strict, hadolint and helm lint.
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/ruff format --check .
	$(VENV_BIN)/mypy operator scheduler runtime hack
	$(VENV_BIN)/hadolint Dockerfile
	$(PY) hack/tool.py helm lint --strict charts/outrider
	$(PY) hack/tool.py helm lint --strict charts/outrider -f charts/outrider/ci/watch-namespace-values.yaml

.PHONY: fmt
fmt: ## Format and auto-fix with ruff.
	$(VENV_BIN)/ruff format .
	$(VENV_BIN)/ruff check --fix .

.PHONY: manifests
manifests: ## Regenerate the CRD, chart CRD copy and rendered manifests from the typed models.
	$(PY) -m outrider_operator.manifests.generate
	$(PY) hack/render_manifests.py

.PHONY: verify
verify: manifests ## Regenerate everything and fail on drift.
	git diff --exit-code -- $(GENERATED)
	@test -z "$$(git status --porcelain -- $(GENERATED))" || { git status --porcelain -- $(GENERATED); echo "generated files are not committed: run make manifests and commit"; exit 1; }

.PHONY: test
test: ## Run unit, component and e2e tests (e2e starts its own local cluster).
	$(PY) -m pytest tests e2e $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: ## Run the tests that need no control plane.
	$(PY) -m pytest tests $(PYTEST_ARGS)

##@ Local cluster
.PHONY: image
image: ## Build the runtime, control and runtime-gpu images from the Dockerfile, and the chart's kube-scheduler image (buildah; cached).
	$(PY) -m outrider_devcluster image

.PHONY: binaries
binaries: ## Build (once) or locate etcd, kube-apiserver, -scheduler, -controller-manager, kubelet, kube-proxy, kwok, kubectl, helm.
	$(PY) -m outrider_devcluster binaries

.PHONY: cluster-up
cluster-up: ## Start the control plane, simulated GPU nodes and a real node (OUTRIDER_REAL_NODES=1); kubeconfig .cluster/kubeconfig.
	$(PY) -m outrider_devcluster up

.PHONY: cluster-down
cluster-down: ## Stop every process the local cluster started.
	$(PY) -m outrider_devcluster down

.PHONY: cluster-status
cluster-status: ## Show cluster processes, readiness, nodes and memory.
	$(PY) -m outrider_devcluster status

.PHONY: demo
demo: ## The main job: local cluster, chart, operator, extender, samples, a real inference, a live forecast.
	@test -x $(PY) || $(MAKE) setup
	@bash hack/setup-system.sh
	$(PY) hack/demo.py

##@ Benchmarks
.PHONY: bench-cluster
bench-cluster: ## Cluster start time and memory; writes bench/results/cluster.json.
	$(PY) bench/cluster_bench.py

.PHONY: bench-real-node
bench-real-node: ## A cluster with a real node: start, image import, pod creation -> Ready, memory; writes bench/results/real-node.json.
	$(PY) bench/real_node_bench.py

.PHONY: bench-operator
bench-operator: ## The operator at fleet scale: 1,000 InferenceDeployments on 25 simulated nodes (convergence, RSS, idle API traffic, drift repair); writes bench/results/operator.json.
	$(PY) bench/operator_bench.py

.PHONY: bench-runtime
bench-runtime: ## Runtime throughput/latency vs peers; writes bench/results/runtime.json.
	$(PY) bench/runtime_bench.py

.PHONY: bench-extender
bench-extender: ## Extender filter/prioritize latency at 100-5,000 nodes; writes bench/results/extender.json.
	$(PY) bench/extender_bench.py

.PHONY: bench-forecast
bench-forecast: ## Forecaster backtests on every shared trace; writes bench/results/forecast/.
	$(PY) bench/forecast_bench.py

.PHONY: bench-forecast-service
bench-forecast-service: ## The forecaster's live costs and replay alone; replaces those entries of bench/results/forecast.json.
	$(PY) bench/forecast_bench.py --service-only

.PHONY: bench-forecast-variants
bench-forecast-variants: ## The quick backtest on week-long traces of other shapes built from the shared week, beside an untuned GBM; writes bench/results/forecast-variants.json.
	$(PY) bench/forecast_variants.py

.PHONY: bench-surge
bench-surge: ## Planner surge trials on the local cluster (operator, scheduler, planner and serving pods on the real node); writes bench/results/surge.json.
	$(PY) bench/surge_bench.py

.PHONY: bench-policy
bench-policy: ## outrider simulate on every shared trace (all policies); writes bench/results/policy/.
	$(PY) bench/policy_bench.py

.PHONY: bench-frontier
bench-frontier: ## Violating minutes against GPU-hours as Outrider's, HPA's and KPA's targets move, every shared trace; writes bench/results/policy-frontier.json.
	$(PY) bench/policy_frontier.py

.PHONY: bench-twin
bench-twin: ## The simulator's latency model beside real runtimes, minute by minute; writes bench/results/twin.json.
	$(PY) bench/twin_check.py

.PHONY: profile-runtime
profile-runtime: ## Measure the runtime's compute time per batch size; writes the planner's shipped capacity profile.
	$(PY) bench/capacity_profile.py --install
