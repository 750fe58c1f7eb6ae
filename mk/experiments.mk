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
# runs/ombria_label_efficiency/<fraction>/. Resumable: run it again after an interruption. Measured: 101 min on
# 2 CPU cores (the plan 57 min, the diagnostic arms 44 min).
# LE_WORKERS processes of LE_THREADS torch threads share the plan (each run is claimed by one process): on the
# shared 2-core machine, two processes of one thread trained an epoch in 38 s where one process of two threads
# took 4 min (thread contention). With a GPU, LE_WORKERS=1 LE_THREADS=2.
LE_WORKERS ?= 2
LE_THREADS ?= 1
label-efficiency-ombria: setup
	@test -d "$(OMBRIA_ROOT)/OmbriaS1" || { echo "OMBRIA not found: set OMBRIA_ROOT=<folder with OmbriaS1/ and OmbriaS2/>"; exit 1; }
	pids=; for worker in $$(seq $(LE_WORKERS)); do \
		OMP_NUM_THREADS=$(LE_THREADS) $(PY) scripts/ombria_label_efficiency.py --root $(OMBRIA_ROOT) \
			--threads $(LE_THREADS) $(OMBRIA_ARGS) & pids="$$pids $$!"; \
	done; status=0; for pid in $$pids; do wait $$pid || status=1; done; exit $$status
	$(PY) scripts/ombria_label_efficiency.py --root $(OMBRIA_ROOT) --report-only --cards $(OMBRIA_ARGS)
