# The bundled model (issue 6): teacher on Sentinel-2, distilled student and SAR-only baseline on Sentinel-1,
# evaluated on the held-out locations, then copied to resources/models/ with a generated MODEL_CARD.md.
# Every step resumes (--resume) after a kill; `make train-bundled` again finishes the job.
BUNDLED_DATA ?= ../shared/data
BUNDLED_RUN ?= runs/bundled
BUNDLED_SEED ?= 0
BUNDLED_EPOCHS ?= 30
# Weight of the students' tile-consistency loss (0 = off). Tried at 1 (2026-11-25, before alignment offsets were
# bounded): lower validation mIoU of the SAR-only student (0.305 vs 0.322) and no steadier maps across tile sizes
# on the Sen1Floods11 chips, so off. Bounding the offsets (HFDNetConfig.max_offset) is what made maps steadier.
BUNDLED_CONSISTENCY ?= 0
# Sen1Floods11 India_900498 is the samples' only Sentinel-1 + Sentinel-2 chip with hand-labelled water: it is kept
# out of the bundled models so that hfd:finetune's promise (issue 14) is measured on a chip they never saw, as a
# user's is (`finetune-unseen-chip`, tests/test_finetune_defaults.py).
BUNDLED_LEAVE_OUT ?= sen1floods11-India
BUNDLED_ARGS = --dataset bundled --root $(BUNDLED_DATA) --split train --val-fraction 0.25 --seed $(BUNDLED_SEED) \
	--tile-size 96 --batch-size 16 --samples-per-epoch 320 --epochs $(BUNDLED_EPOCHS) --lr 2e-3 --resume --quiet \
	$(addprefix --leave-out ,$(BUNDLED_LEAVE_OUT))
BUNDLED_EVAL = --dataset bundled --root $(BUNDLED_DATA) --split test
# The students train side by side as BUNDLED_JOBS processes of BUNDLED_THREADS threads. One thread per process also
# makes a run repeatable: with two threads the sums run in another order and gave another model (2026-12-04).
BUNDLED_JOBS ?= 2
BUNDLED_THREADS ?= 1
BUNDLED_PARALLEL = OMP_NUM_THREADS=$(BUNDLED_THREADS) $(MAKE) -j$(BUNDLED_JOBS)

.PHONY: train-bundled bundled-teacher bundled-student bundled-sar-only

train-bundled: setup
	@test -d "$(BUNDLED_DATA)" || { echo "train-bundled needs the samples folder BUNDLED_DATA=$(BUNDLED_DATA)"; exit 1; }
	+$(BUNDLED_PARALLEL) bundled-student bundled-sar-only
	for run in teacher student student_sar_only; do \
		$(PY) -m hfd_core evaluate $(BUNDLED_EVAL) --model $(BUNDLED_RUN)/$$run/best.pt --json $(BUNDLED_RUN)/$$run/test.json || exit 1; \
	done
	$(PY) scripts/bundled_model_card.py --run $(BUNDLED_RUN) --models resources/models --samples $(BUNDLED_DATA) \
		--command "make train-bundled BUNDLED_SEED=$(BUNDLED_SEED) BUNDLED_EPOCHS=$(BUNDLED_EPOCHS) \
		BUNDLED_CONSISTENCY=$(BUNDLED_CONSISTENCY) BUNDLED_LEAVE_OUT=\"$(BUNDLED_LEAVE_OUT)\""

# Teacher, then the student distilled from it; the SAR-only student beside them.
bundled-teacher: setup
	$(PY) -m hfd_core train-teacher $(BUNDLED_ARGS) --out $(BUNDLED_RUN)/teacher
bundled-student: bundled-teacher
	$(PY) -m hfd_core train-student $(BUNDLED_ARGS) --teacher $(BUNDLED_RUN)/teacher/best.pt \
		--consistency-weight $(BUNDLED_CONSISTENCY) --out $(BUNDLED_RUN)/student
bundled-sar-only: setup
	$(PY) -m hfd_core train-student $(BUNDLED_ARGS) --no-distill \
		--consistency-weight $(BUNDLED_CONSISTENCY) --out $(BUNDLED_RUN)/student_sar_only

# Issue 14: what hfd:finetune's defaults buy on a chip the models never saw. bench/finetune_defaults.py fine-tunes
# the shipped student label-free on India_900498 (kept out of the bundled models, above) with every default and
# scores water IoU on the held-out block. FINETUNE_SEEDS: the fine-tuning seeds (each holds out another block).
# Measured 2026-12-05: about 3 min per seed on one thread (BUNDLED_THREADS).
FINETUNE_SEEDS ?= 0 1 2
.PHONY: finetune-unseen-chip
finetune-unseen-chip: setup
	@test -d "$(BUNDLED_DATA)/sen1floods11" || { echo "finetune-unseen-chip needs BUNDLED_DATA=<samples folder>"; exit 1; }
	for seed in $(FINETUNE_SEEDS); do \
		OMP_NUM_THREADS=$(BUNDLED_THREADS) $(PY) bench/finetune_defaults.py \
			--chip $(BUNDLED_DATA)/sen1floods11/India_900498 --set seed=$$seed || exit 1; \
	done
