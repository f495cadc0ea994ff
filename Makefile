# speakerid — `make help` lists the targets. Targets that run a tool take ARGS="hydra overrides".
VENV ?= .venv
PY := $(VENV)/bin/python
ARGS ?=
export WANDB_MODE ?= offline
export HF_HUB_OFFLINE ?= 1

.DEFAULT_GOAL := help
.PHONY: help install sync lock train eval embed enhance export prepare pretrained docs baseline test test-fast test-all lint format sweep search bench gpu-check clean clean-data

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-10s %s\n", $$1, $$2}'

# The venv is built from uv.lock, never from the ranges in pyproject.toml: two installs a month
# apart get the same packages. uv bootstraps with pip (the version pinned in the lock's dev extra,
# so `uv sync` keeps it), then installs the lock with its hashes checked.
UV_VERSION := 0.13.9
UV := $(VENV)/bin/uv
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export UV_PYTHON_DOWNLOADS := never

$(UV):
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --extra dev --quiet
	touch $@

# The install check runs after every sync and whenever the venv's package set changed since it
# last passed (site-packages' mtime moves when any package is added, removed or changes version).
$(VENV)/.checked: $(VENV)/.installed $(wildcard $(VENV)/lib/python3*/site-packages)
	$(PY) -m speakerid.install_check
	touch $@

install: $(VENV)/.checked ## Create .venv from uv.lock, then check it (imports, one fbank, one forward pass)

sync: | $(UV) ## Put .venv back to exactly what uv.lock says (removes strays, restores pins)
	$(UV) sync --frozen --extra dev
	touch $(VENV)/.installed

lock: | $(UV) ## Regenerate uv.lock from pyproject.toml; ARGS=--upgrade moves every package forward
	$(UV) lock $(ARGS)

train: install ## Train the default recipe on the built-in corpus (built if missing), then test it
	$(VENV)/bin/speakerid-train $(ARGS)

eval: install ## Score trials with a checkpoint: ARGS="ckpt_path=logs/train/runs/<run>/checkpoints/best.ckpt"
	$(VENV)/bin/speakerid-eval $(ARGS)

embed: install ## Embed a corpus into a resumable store: ARGS="ckpt_path=... output=data/embeddings/NAME"
	$(VENV)/bin/speakerid-embed $(ARGS)

enhance: install ## Train an embedding enhancer: ARGS="data.store=data/embeddings/NAME enhance_loss=mse"
	$(VENV)/bin/speakerid-enhance $(ARGS)

export: install ## Export a checkpoint (front end + backbone): ARGS="ckpt_path=... format=torchscript|onnx"
	$(VENV)/bin/speakerid-export $(ARGS)

prepare: install ## Build the synthetic corpus, or check a real one (ARGS="corpus=voxceleb corpus.root=...")
	$(VENV)/bin/speakerid-prepare $(ARGS)

pretrained: install ## Resemblyzer's GE2E encoder (real speech; from the package registry) as data/pretrained/resemblyzer.ckpt
	$(VENV)/bin/speakerid-prepare pretrained=resemblyzer $(ARGS)
	$(VENV)/bin/speakerid-eval ckpt_path=data/pretrained/resemblyzer.ckpt evaluation.sections.plots=null  # thresholds, on the built-in corpus

baseline: install ## EER of a model that does not learn (cosine of mean fbank) on the same test trials
	$(PY) -m speakerid.analysis.baseline $(ARGS)

test: install ## Run the test suite (all CPU tests, slow ones included)
	$(PY) -m pytest -m "not gpu" $(ARGS)

test-fast: install ## The inner loop: every test but the slow ones (train runs, subprocess entry points)
	$(PY) -m pytest -m "not slow and not gpu" $(ARGS)

test-all: install ## Run every test, GPU ones included (they need CUDA)
	$(PY) -m pytest $(ARGS)

gpu-check: install ## On a CUDA machine: ECAPA-512 + ResNet-34 in fp32/bf16/fp16 (speed, memory, data wait, compile, loss falls); a 1-minute dry run without CUDA
	$(PY) -m speakerid.gpu_check $(ARGS)

lint: install ## ruff check and format check
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests

format: install ## ruff fix and format
	$(VENV)/bin/ruff check --fix src tests
	$(VENV)/bin/ruff format src tests

sweep: install ## Hydra multirun over the AAM margin and scale (basic launcher, one run after another)
	$(VENV)/bin/speakerid-train --multirun loss.margin=0.1,0.2,0.3 loss.scale=20,30 $(ARGS)

search: install ## Optuna search over the AAM margin, scale and learning rate (ARGS="hparams_search=aam_optuna_sqlite" keeps the study)
	$(VENV)/bin/speakerid-train hparams_search=aam_optuna $(ARGS)

docs: install ## Regenerate docs/configuration.md from conf/ (a test checks it is current)
	$(VENV)/bin/python -m speakerid.configdoc

bench: install ## Throughput figures, written to bench.json
	$(PY) -m speakerid.bench $(ARGS)

clean: ## Remove run folders and caches (keeps data/ and .venv/)
	rm -rf logs .pytest_cache .ruff_cache bench.json
	find . -name __pycache__ -prune -not -path './.venv/*' -exec rm -rf {} +

clean-data: ## Remove data/ (the synthetic corpus and manifest caches)
	rm -rf data
