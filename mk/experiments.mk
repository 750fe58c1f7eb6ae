# OMBRIA experiments (issue 8): distilled SAR student vs SAR-only student, generated report in docs/experiments/.
# Resumable: finished runs in runs/ombria/runs/ are reused, so `make reproduce-ombria` again finishes a cut run.
OMBRIA_ROOT ?= ../shared/data/ombria
# Extra driver options, e.g. OMBRIA_ARGS="--budget smoke --out /tmp/ombria --docs /tmp/ombria-docs" (end-to-end check).
OMBRIA_ARGS ?=

.PHONY: reproduce-ombria ablate-ombria label-efficiency-ombria

reproduce-ombria: setup
	@test -d "$(OMBRIA_ROOT)/OmbriaS1" || { echo "OMBRIA not found: set OMBRIA_ROOT=<folder with OmbriaS1/ and OmbriaS2/>"; exit 1; }
	$(PY) scripts/ombria_experiment.py --root $(OMBRIA_ROOT) $(OMBRIA_ARGS)

ablate-ombria: setup
	@test -d "$(OMBRIA_ROOT)/OmbriaS1" || { echo "OMBRIA not found: set OMBRIA_ROOT=<folder with OmbriaS1/ and OmbriaS2/>"; exit 1; }
	$(PY) scripts/ombria_experiment.py --root $(OMBRIA_ROOT) --ablations $(OMBRIA_ARGS)

# Issue 17: label fractions 0/5/10/25/100 % x 5 seeds x (SAR-only, HFD) on OMBRIA, page and plot generated into
# docs/experiments/ombria_label_efficiency.md (its answer also into the water model cards), checkpoints in
# runs/ombria_label_efficiency/<fraction>/.
# About 60 minutes on 2 idle CPU cores; resumable (run it again after an interruption).
label-efficiency-ombria: setup
	@test -d "$(OMBRIA_ROOT)/OmbriaS1" || { echo "OMBRIA not found: set OMBRIA_ROOT=<folder with OmbriaS1/ and OmbriaS2/>"; exit 1; }
	$(PY) scripts/ombria_label_efficiency.py --root $(OMBRIA_ROOT) --cards $(OMBRIA_ARGS)
