# The two set-up commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: test demo lint typecheck unit bench up synth clean lock sam-env

$(STAMP): requirements.txt requirements-cli.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || (echo "Python 3.11+ is required" && exit 1)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	# The project itself, editable: `flowcraft` and `import flowcraft_core` work from any folder.
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/python -m local demo

# `make up UP_ARGS=--verbose` shows the handlers' JSON log records and metric documents.
up: $(STAMP)
	$(BIN)/python -m local up $(UP_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/distributed.py
	$(BIN)/python bench/coldstart.py

# The Lambda's runtime dependencies, resolved for its platform (Python 3.13, manylinux) with the
# sha256 of every file; stacks/bundling.py installs them with --require-hashes. One lock serves
# both architectures: it lists the hashes of every wheel of each pinned version.
lock: $(STAMP)
	$(BIN)/uv pip compile requirements.txt --quiet --generate-hashes --only-binary :all: \
		--python-version 3.13 --python-platform aarch64-manylinux2014 \
		--custom-compile-command "make lock" --output-file requirements.lock

# env.json for `sam local invoke --env-vars env.json`: the functions' variables with real values
# (deployed stack outputs when AWS credentials reach it, else what the template fixes). Reads
# cdk.out/$(STACK).template.json, synthesizing it first when it is not there.
STACK ?= flowcraft
sam-env: $(STAMP)
	test -f cdk.out/$(STACK).template.json || npx --yes aws-cdk@2 synth --quiet
	$(BIN)/python -m stacks.sam_env --stack $(STACK) --output env.json

synth: $(STAMP)
	npx --yes aws-cdk@2 synth

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .mypy_cache .ruff_cache
