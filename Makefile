# Two commands: `make demo` (the whole pipeline on the synthetic sample) and `make test`.
# Both create .venv and install the project into it when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# On these machines torch and torchvision must be the pair on disk (constraints.txt); override elsewhere:
#   make test CONSTRAINTS=
CONSTRAINTS ?= -c constraints.txt
DEMO_DIR := data/sample
DEMO_ROOT := $(DEMO_DIR)/CUB_200_2011
DEMO_FEATURES := data/features/sample
DEMO_RUNS := runs/demo
DEMO_CLASSES := 10
DEMO_IMAGES := 16
# the study `make demo` runs: backbone, views, methods, K ladder, seeds and grid (its caches go to DEMO_FEATURES,
# its directory to DEMO_RUNS, its random backbone to DEMO_BACKBONE)
DEMO_SPEC := studies/demo.toml
DEMO_MODELS := data/models
DEMO_SEED := 0
# the random backbone `make demo` saves once (extract-features --model-cache/--seed): clean-demo removes it
DEMO_BACKBONE := $(DEMO_MODELS)/random-resnet50v2-seed$(DEMO_SEED)

.PHONY: demo test install clean-demo

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "setuptools<81" wheel $(CONSTRAINTS)
	$(BIN)/python -m pip install -q $(CONSTRAINTS) -e ".[test]"
	touch $(STAMP)

# two pytest-xdist workers: TensorFlow's tests (and Ray's) on one, the other files each whole on either (tests/conftest.py)
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

# rewrite the generated option tables in docs/ from the commands and heads/options.py (a test fails when they drift)
.PHONY: docs
docs: $(STAMP)
	$(BIN)/python docs/generate.py

demo: $(STAMP)
	$(BIN)/make-sample-dataset --out $(DEMO_DIR) --classes $(DEMO_CLASSES) --images-per-class $(DEMO_IMAGES)
	$(BIN)/study $(DEMO_SPEC)
	@echo "demo report: $(DEMO_RUNS)/report.md and $(DEMO_RUNS)/report.html (open it in a browser, offline)"

# everything `make demo` wrote; parent directories go only when nothing else is left in them
clean-demo:
	rm -rf $(DEMO_DIR) $(DEMO_FEATURES) $(DEMO_RUNS) $(DEMO_BACKBONE)
	rmdir $(DEMO_MODELS) $(dir $(DEMO_FEATURES)) $(dir $(DEMO_RUNS)) 2>/dev/null || true
