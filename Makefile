# Two commands: `make demo` (the whole pipeline on the synthetic sample) and `make test`.
# Both create .venv and install the project into it when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# On these machines torch must be the CPU wheel on disk (constraints.txt); override elsewhere:
#   make test CONSTRAINTS=
CONSTRAINTS ?= -c constraints.txt
DEMO_DIR := data/sample
DEMO_ROOT := $(DEMO_DIR)/CUB_200_2011
DEMO_FEATURES := data/features/sample
DEMO_RUNS := runs/demo
DEMO_CLASSES := 20
DEMO_IMAGES := 20
DEMO_MODELS := data/models
DEMO_SEED := 0
# the random backbone `make demo` saves once (extract-features --model-cache/--seed): clean-demo removes it
DEMO_BACKBONE := $(DEMO_MODELS)/random-resnet50v2-seed$(DEMO_SEED)
DEMO_EXTRACT := --backbone random-resnet50v2 --model-cache $(DEMO_MODELS) --seed $(DEMO_SEED) --spatial --quiet
DEMO_SWEEP := --train $(DEMO_FEATURES)/train.h5 --test $(DEMO_FEATURES)/test.h5 --data-root $(DEMO_ROOT) \
	--out $(DEMO_RUNS) --name sweep --epochs 30 --batch-size 32 --seeds 0-2 --quiet \
	--aux none,linear,pirl,dcl,dcl-none --aux-weight 0.01,0.1,1 --classifier-input embedding,hidden --jigsaw-head separate,shared \
	--weight-decay 5e-4 --weight-decay linear=1e-5,1e-4,1e-3,1e-2,1e-1 --dcl-adv-weight 0.1,1 --dcl-align-weight 0.1,1

.PHONY: demo test install clean-demo

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "setuptools<81" wheel $(CONSTRAINTS)
	$(BIN)/python -m pip install -q $(CONSTRAINTS) -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# rewrite the generated option tables in docs/ from the commands and heads/options.py (a test fails when they drift)
.PHONY: docs
docs: $(STAMP)
	$(BIN)/python docs/generate.py

demo: $(STAMP)
	$(BIN)/make-sample-dataset --out $(DEMO_DIR) --classes $(DEMO_CLASSES) --images-per-class $(DEMO_IMAGES)
	$(BIN)/extract-features --data-root $(DEMO_ROOT) --split train --out $(DEMO_FEATURES)/train.h5 $(DEMO_EXTRACT)
	$(BIN)/extract-features --data-root $(DEMO_ROOT) --split test --out $(DEMO_FEATURES)/test.h5 $(DEMO_EXTRACT)
	$(BIN)/python -m pipeline.cache $(DEMO_FEATURES)/train.h5 $(DEMO_FEATURES)/test.h5
	$(BIN)/sweep-heads $(DEMO_SWEEP)

# everything `make demo` wrote; parent directories go only when nothing else is left in them
clean-demo:
	rm -rf $(DEMO_DIR) $(DEMO_FEATURES) $(DEMO_RUNS) $(DEMO_BACKBONE)
	rmdir $(DEMO_MODELS) $(dir $(DEMO_FEATURES)) $(dir $(DEMO_RUNS)) 2>/dev/null || true
