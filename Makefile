# HFD-Net SAR segmentation for QGIS. `make demo` and `make test` install whatever is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

SYSTEM_PYTHON := /usr/bin/python3
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
SITE_PACKAGES = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
TORCH_VERSION := 2.13.0
# Extra pip options for torch, e.g. TORCH_PIP_OPTS="--extra-index-url https://download.pytorch.org/whl/cpu"
# on a machine where no CPU wheel is cached locally (a plain `pip install torch` pulls a multi-GB CUDA build).
TORCH_PIP_OPTS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := qgis python3-qgis qgis-providers python3-numpy python3-rasterio python3-skimage python3-scipy \
	python3-matplotlib python3-venv python3-pip xvfb xauth
QGIS_PROFILE_DIR ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default
PLUGIN_NAME := hfd_qgis
PLUGIN_DIR := $(QGIS_PROFILE_DIR)/python/plugins/$(PLUGIN_NAME)
BIN_DIR ?= $(if $(filter 0,$(shell id -u)),/usr/local/bin,$(HOME)/.local/bin)
STAMP := .make
export QT_QPA_PLATFORM ?= offscreen
export XDG_RUNTIME_DIR ?= /tmp/runtime-$(shell id -u)

.PHONY: help setup system-packages venv install uninstall test lint package demo clean

help:
	@echo "make demo     install what is missing, then segment the bundled real SAR sample"
	@echo "make test     install what is missing, then run the whole test suite"
	@echo "make setup | install | uninstall | lint | package | clean"
	@echo "make train-bundled     rebuild the bundled land-cover models (README, Training from the command line)"
	@echo "make water-model       rebuild the bundled water model and its card (about 2 hours on 2 cores)"
	@echo "make reproduce-ombria | ablate-ombria | label-efficiency-ombria   the OMBRIA experiments"

## setup: Debian packages (QGIS 3.22, GDAL-based numpy/rasterio/skimage) + .venv with torch (CPU) and test tools.
# Recommended packages are installed, as a user's `apt-get install qgis` does: they bring Python packages
# (python3-sympy 1.11 among them) that QGIS's Python sees before torch's folder, so the tests meet them too.
setup: system-packages $(STAMP)/venv

system-packages:
	@dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { \
	  echo "Installing Debian packages: $(APT_PACKAGES)"; \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y $(APT_PACKAGES); }

$(STAMP)/venv: pyproject.toml | system-packages
	@mkdir -p $(STAMP)
	[ -x $(PY) ] || $(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q torch==$(TORCH_VERSION) $(TORCH_PIP_OPTS)
	$(PY) -m pip install -q "pytest>=7" "pytest-qgis>=2" ruff
	$(PY) -c "import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()['purelib'], 'hfd-sar-project.pth').write_text('$(CURDIR)\\n')"
	$(PY) -c "import torch, numpy, rasterio, skimage, qgis.core, hfd_core; print('torch', torch.__version__, 'numpy', numpy.__version__, 'rasterio', rasterio.__version__)"
	@touch $@

venv: $(STAMP)/venv

## install: the plugin into the QGIS profile (enabled), and a working qgis_process launcher on PATH
install: setup
	$(PY) scripts/install_plugin.py --profile-dir "$(QGIS_PROFILE_DIR)" --site-packages "$(SITE_PACKAGES)"
	@mkdir -p "$(BIN_DIR)"
	install -m 755 bin/qgis_process "$(BIN_DIR)/qgis_process"
	@echo "qgis_process launcher: $(BIN_DIR)/qgis_process (make sure $(BIN_DIR) comes before /usr/bin on PATH)"

uninstall:
	rm -rf "$(PLUGIN_DIR)"

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check hfd_core hfd_qgis tests bench scripts

package: setup
	$(PY) scripts/install_plugin.py --zip dist/$(PLUGIN_NAME).zip

DEMO_INPUT := resources/samples/s1_demo_vv_vh_db.tif
DEMO_OUT := runs/demo
# The bundled student by default; DEMO_MODEL=path/to/model.pt segments with another model file.
DEMO_MODEL ?= resources/models/student.pt
demo: install
	@test -f "$(DEMO_MODEL)" || { echo "No model file $(DEMO_MODEL): the bundled model comes from \
	\`make train-bundled\` (or pass DEMO_MODEL=path/to/model.pt)"; exit 1; }
	@mkdir -p $(DEMO_OUT)
	@# GDAL_PAM_ENABLED=NO: QGIS would otherwise leave a statistics .aux.xml beside the bundled sample.
	GDAL_PAM_ENABLED=NO "$(BIN_DIR)/qgis_process" run hfd:segment -- INPUT="$(CURDIR)/$(DEMO_INPUT)" MODEL="$(abspath $(DEMO_MODEL))" \
	  OUTPUT="$(CURDIR)/$(DEMO_OUT)/segmentation.tif" CONFIDENCE="$(CURDIR)/$(DEMO_OUT)/confidence.tif"
	$(PY) -m hfd_core preview "$(DEMO_OUT)/segmentation.tif" "$(DEMO_OUT)/segmentation.png" --input "$(DEMO_INPUT)"
	@echo "Demo result: $(DEMO_OUT)/segmentation.tif (styled by segmentation.qml), preview $(DEMO_OUT)/segmentation.png"

clean:
	rm -rf build dist $(STAMP) .pytest_cache

# Training and experiment targets (train-bundled, reproduce-ombria, ablate-ombria) live in mk/.
include $(wildcard mk/*.mk)
