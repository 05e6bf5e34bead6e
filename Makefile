# Mars Analogue Finder — all set-up and everyday commands.
#   make demo   build library + score the bundled Mars scene through qgis_process
#   make test   lint, type-check and run the whole test suite (headless)
# Both install what they need (QGIS 3.40 from bookworm-backports, a venv, pip packages) and are
# idempotent: the second run skips the installs.

SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -eu -o pipefail -c

PY_SYS   := /usr/bin/python3
VENV     := .venv
PY       := $(VENV)/bin/python
SITE     := $(abspath $(VENV))/lib/python3.11/site-packages
BUILD    := build
PLUGDIR  := $(BUILD)/plugin
PROFILE  := $(abspath $(BUILD)/qgis-profile)
DATA     ?= ../shared/data
VERSION  := $(shell sed -n 's/^version=//p' metadata.txt)
QGIS_PLUGINS_DIR ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default/python/plugins

# Headless QGIS: offscreen Qt, our plugin folder, an isolated profile, and the venv's packages
# (onnxruntime) visible to the Python that qgis_process embeds.
export QT_QPA_PLATFORM := offscreen
export QGIS_PLUGINPATH := $(abspath $(PLUGDIR))
export QGIS_CUSTOM_CONFIG_PATH := $(PROFILE)
export ANALOG_EXTRA_SITE := $(SITE)
export PYTHONDONTWRITEBYTECODE := 1

PY_SOURCES := $(shell find analog_plugin scripts tests -name '*.py' -not -path '*/_vendor/*' 2>/dev/null)

.PHONY: all setup system venv build demo test test-fast lint typecheck deploy package train export evaluate golden model train-v1 benchmark bench clean

all: test

## ---- set-up -------------------------------------------------------------------------------
system:
	bash scripts/setup_system.sh

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt | system
	[ -x $(PY) ] || $(PY_SYS) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q -c constraints.txt -r requirements-dev.txt
	$(PY) -c "import numpy, onnxruntime, qgis.core, rasterio; assert numpy.__version__.startswith('1.'), numpy.__version__"
	touch $@

venv: $(VENV)/.installed

setup: system venv

## ---- plugin folder --------------------------------------------------------------------------
build: setup
	$(PY) scripts/build_plugin.py --dest $(PLUGDIR)
	mkdir -p $(PROFILE)
	# 'enable' exits non-zero when already enabled: judge by what qgis_process lists instead.
	qgis_process plugins enable analog_plugin >/dev/null 2>&1 || true
	qgis_process list 2>/dev/null | grep -q 'analog:scoretiles' || { qgis_process list; echo 'analog_plugin did not load in qgis_process' >&2; exit 1; }

## ---- main job -------------------------------------------------------------------------------
demo: build
	$(PY) scripts/run_demo.py --out demo-output

## ---- tests ----------------------------------------------------------------------------------
lint: venv
	$(VENV)/bin/ruff check analog_plugin scripts tests
	$(VENV)/bin/mypy analog_plugin scripts
	# The official plugin repository's upload scan blocks on bandit and detect-secrets findings.
	$(VENV)/bin/bandit -q -r analog_plugin
	$(PY) scripts/check_qt6.py
	$(VENV)/bin/detect-secrets scan analog_plugin metadata.txt resources models/analog-siamese.md \
	  | $(PY) -c "import json,sys; r=json.load(sys.stdin)['results']; sys.exit('detect-secrets findings: %s' % r if r else 0)"

typecheck: lint

test: build lint
	$(PY) -m pytest -q --timeout=600 $(PYTEST_ARGS)

test-fast: build
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

## ---- install / release ------------------------------------------------------------------------
deploy: venv
	mkdir -p "$(QGIS_PLUGINS_DIR)"
	$(PY) scripts/build_plugin.py --dest "$(QGIS_PLUGINS_DIR)" --vendor
	@echo "Installed into $(QGIS_PLUGINS_DIR)/analog_plugin — enable it in Plugins > Manage and Install Plugins"

# The release zip for the official plugin repository: no compiled binaries (onnxruntime comes from
# the plugin's installer at first use), <= 25 MB, complete metadata (scripts/check_release.py).
package: venv
	rm -rf $(BUILD)/package
	$(PY) scripts/build_plugin.py --dest $(BUILD)/package --zip dist/analog_plugin-$(VERSION).zip
	$(PY) scripts/check_release.py dist/analog_plugin-$(VERSION).zip

## ---- model (offline; needs ../shared/data) ---------------------------------------------------
# v2: frozen int8 EfficientNet-Lite2 trunk + Siamese head, chosen by grouped cross-validation
# (about 30 min on 2 CPU cores). The trunk and the image features (most of the training time)
# are cached in runs/v2 and reused; the heads (about 6 min) are retrained unless TRAIN_ARGS says
# "--skip-cv-if-done --resume" (keep the fold models, continue the final head's checkpoint).
# v1 (train-v1) is kept for reference: scripts/evaluate.py compares against its archived export
# in models/archive/.
RUN ?= runs/v2
RUN_V1 ?= runs/siamese
TRAIN_ARGS ?=

train: venv
	$(PY) scripts/train_v2.py --data $(DATA) --run $(RUN) --cv $(TRAIN_ARGS)

export: venv
	test -f $(RUN)/model.onnx || { echo "no $(RUN)/model.onnx: run 'make train' first" >&2; exit 1; }
	cp $(RUN)/model.onnx models/analog-siamese.onnx

evaluate: venv
	$(PY) scripts/evaluate.py --data $(DATA) --fold-models $(RUN)/folds --trunk $(RUN)/trunk_int8.onnx --card models/analog-siamese.md

# The golden-embedding test follows the bundled model: rewritten after every retraining.
golden: venv
	$(PY) scripts/make_golden.py

model: train export evaluate golden

train-v1: venv
	$(PY) scripts/train.py --data $(DATA) --run $(RUN_V1) --epochs 14
	$(PY) scripts/export_onnx.py --checkpoint $(RUN_V1)/model.pt --data $(DATA) --version 1.1.0 --out models/archive/analog-siamese-1.1.0.onnx

benchmark: venv
	$(PY) scripts/benchmark.py

# End-to-end throughput and memory of the engine (issue: tile-embedding engine): markdown + JSON.
bench: build
	$(PY) scripts/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(BUILD) dist demo-output .pytest_cache .mypy_cache .ruff_cache
