# One entry point for people and CI. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1
# Python caches compiled modules (__pycache__, git-ignored) even where the machine's environment
# says not to: `make test` starts ~150 interpreters (xdist workers, devstacks, moto servers,
# function workers), and each compiled the project's sources and pytest's rewritten tests again
# (collection 10.3 CPU-s without the cache, 4.8 with it).
export PYTHONDONTWRITEBYTECODE :=

.PHONY: venv demo up test lint typecheck template test-cases test-slow test-browser test-compat test-tools unit integration e2e bench clean

$(STAMP): pyproject.toml layers/sluice/requirements.txt clients/python/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# After the server: a venv made before the split has a `sluice` script of the server's, which the
	# server's reinstall removes; the client's install then writes the one that stays.
	$(PY) -m pip install --quiet -e './clients/python[sqs]'
	touch $(STAMP)

venv: $(STAMP)

## The main job on the local stack: start devstack, trigger runs, watch them flow, stop.
demo: $(STAMP) redis-server
	$(PY) -m devstack.demos.demo

## Run the local stack in the foreground (Ctrl-C stops everything).
up: $(STAMP) redis-server
	$(PY) -m devstack up

## Everything CI checks, side by side on the machine's two cores: lint, types, template checks,
## every case but the scale ones on $(WORKERS) xdist workers, and the scale ones (`slow`) in a pytest
## run of their own. Much of the suite waits on devstacks, so the parts fill each other's waits.
## Each part's output is printed whole when the part ends (make -O); any part failing fails `test`.
## The cases are the longest part: the others run at a lower priority (BESIDE), so that they take
## the CPU the cases leave while they wait on devstacks rather than slow them down.
WORKERS ?= 3
XDIST   := -n $(WORKERS) --dist loadgroup
BESIDE  ?= nice -n 10
test: redis-server $(STAMP)
	$(MAKE) --no-print-directory --output-sync=target -j5 lint typecheck template test-cases test-slow

test-cases: $(STAMP)
	$(PY) -m pytest -m "not slow and not browser and not compat and not tools" $(XDIST)

test-slow: $(STAMP)
	$(BESIDE) $(PY) -m pytest -m "slow and not browser and not compat and not tools"

## A web page on another origin in headless Chromium (Debian's, installed by scripts/chromium.sh):
## both stream transports, a cut connection, a session append; prints the browser's latencies.
## A failed test leaves a screenshot in .browser-artifacts/. Skipped, saying so, where Chromium
## cannot be installed (no apt-get, not root).
test-browser: redis-server $(STAMP)
	@status=0; scripts/chromium.sh || status=$$?; \
	if [ "$$status" = 3 ]; then echo "test-browser: skipped, no Chromium (see above)" >&2; \
	elif [ "$$status" != 0 ]; then exit "$$status"; \
	else $(PY) -m pytest tests/browser -m browser -s -q; fi

## The developer tooling end to end: every sample event invoked, a handler edited under
## `devstack up --reload`, a Python client generated from openapi.json calling trigger and batch.
test-tools: redis-server $(STAMP)
	$(PY) -m pytest -m tools $(XDIST)

## The unmodified trigger.dev v4 SDK (node, pinned by tests/compat/package-lock.json) against
## devstack. `npm ci` installs exactly the locked tree; it reinstalls only when the lock changed.
COMPAT_MODULES := tests/compat/node_modules/.package-lock.json
$(COMPAT_MODULES): tests/compat/package-lock.json
	cd tests/compat && npm ci --no-audit --no-fund
test-compat: redis-server $(STAMP) $(COMPAT_MODULES)
	$(PY) -m pytest tests/compat -m compat

lint: $(STAMP)
	$(BESIDE) $(VENV)/bin/ruff check .
	$(BESIDE) $(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(BESIDE) $(VENV)/bin/mypy

template: $(STAMP)
	$(BESIDE) $(VENV)/bin/cfn-lint template.yaml
	$(BESIDE) $(VENV)/bin/sam validate --lint --template template.yaml

unit: $(STAMP)
	$(PY) -m pytest tests/unit $(XDIST)

integration: $(STAMP)
	$(PY) -m pytest tests/integration tests/e2e $(XDIST)

bench: $(STAMP)
	for b in engine_calls aws_clients mollifier_intake mollifier_drain mollifier_fairness batch_ingest streams aws_unreachable \
	         sessions_recovery sessions_appends moto_transactions cold_start handler_cpu cost_model run_states observability; do \
	  echo "== bench/$$b.py"; $(PY) -m bench.$$b || exit 1; done

## redis-server is a real binary; install it from Debian's packages when it is missing.
.PHONY: redis-server
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && apt-get install -y -qq redis-server >/dev/null); \
	  else echo "redis-server is missing: install it (apt-get install redis-server / brew install redis)" >&2; exit 1; fi; }

clean:
	rm -rf $(VENV) .devstack .aws-sam .pytest_cache .mypy_cache .ruff_cache

## LocalStack for SQS and S3 (localstack-core, pinned, in .localstack/venv; no Docker).
.PHONY: localstack localstack-stop test-localstack build
localstack:
	scripts/localstack.sh start

localstack-stop:
	scripts/localstack.sh stop

## The integration and e2e suites with SQS and S3 on LocalStack, DynamoDB on moto
## (LOCALSTACK_TESTS narrows it).
LOCALSTACK_TESTS ?= tests/integration tests/e2e
test-localstack: $(STAMP) redis-server localstack
	AWS_ENDPOINT_URL_SQS=http://localhost:4566 AWS_ENDPOINT_URL_S3=http://localhost:4566 \
	  AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
	  $(PY) -m pytest $(XDIST) $(LOCALSTACK_TESTS)

## `sam build` for ARCH (arm64, what samconfig.toml deploys, unless given: `make build ARCH=x86_64`
## for `sam local invoke` without emulation, then deploy with Architecture=x86_64), or exactly
## what is missing for it.
ARCH ?= arm64
build: $(STAMP)
	ARCH=$(ARCH) scripts/sam-build.sh
