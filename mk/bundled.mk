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
BUNDLED_ARGS = --dataset bundled --root $(BUNDLED_DATA) --split train --val-fraction 0.25 --seed $(BUNDLED_SEED) \
	--tile-size 96 --batch-size 16 --samples-per-epoch 320 --epochs $(BUNDLED_EPOCHS) --lr 2e-3 --resume --quiet
BUNDLED_EVAL = --dataset bundled --root $(BUNDLED_DATA) --split test

.PHONY: train-bundled

train-bundled: setup
	@test -d "$(BUNDLED_DATA)" || { echo "train-bundled needs the samples folder BUNDLED_DATA=$(BUNDLED_DATA)"; exit 1; }
	$(PY) -m hfd_core train-teacher $(BUNDLED_ARGS) --out $(BUNDLED_RUN)/teacher
	$(PY) -m hfd_core train-student $(BUNDLED_ARGS) --teacher $(BUNDLED_RUN)/teacher/best.pt \
		--consistency-weight $(BUNDLED_CONSISTENCY) --out $(BUNDLED_RUN)/student
	$(PY) -m hfd_core train-student $(BUNDLED_ARGS) --no-distill \
		--consistency-weight $(BUNDLED_CONSISTENCY) --out $(BUNDLED_RUN)/student_sar_only
	for run in teacher student student_sar_only; do \
		$(PY) -m hfd_core evaluate $(BUNDLED_EVAL) --model $(BUNDLED_RUN)/$$run/best.pt --json $(BUNDLED_RUN)/$$run/test.json || exit 1; \
	done
	$(PY) scripts/bundled_model_card.py --run $(BUNDLED_RUN) --models resources/models --samples $(BUNDLED_DATA) \
		--command "make train-bundled BUNDLED_SEED=$(BUNDLED_SEED) BUNDLED_EPOCHS=$(BUNDLED_EPOCHS) BUNDLED_CONSISTENCY=$(BUNDLED_CONSISTENCY)"

# Issue 14: what hfd:finetune's defaults buy on a chip the models never saw. The bundled recipe above with the
# only labelled S1 + S2 chip (Sen1Floods11 India_900498) left out of teacher and student, then
# bench/finetune_defaults.py fine-tunes that student label-free on the chip with every default and scores
# water IoU on the held-out block. FINETUNE_SEEDS: the fine-tuning seeds (each holds out another block).
# Measured 2026-12-04: about 30 min of training on one thread, then 2.5 min per seed.
UNSEEN_RUN ?= runs/leave_india
FINETUNE_SEEDS ?= 0 1 2
.PHONY: finetune-unseen-chip
finetune-unseen-chip: setup
	@test -d "$(BUNDLED_DATA)/sen1floods11" || { echo "finetune-unseen-chip needs BUNDLED_DATA=<samples folder>"; exit 1; }
	$(PY) -m hfd_core train-teacher $(BUNDLED_ARGS) --leave-out sen1floods11-India --out $(UNSEEN_RUN)/teacher
	$(PY) -m hfd_core train-student $(BUNDLED_ARGS) --leave-out sen1floods11-India \
		--teacher $(UNSEEN_RUN)/teacher/best.pt --consistency-weight $(BUNDLED_CONSISTENCY) --out $(UNSEEN_RUN)/student
	for seed in $(FINETUNE_SEEDS); do \
		$(PY) bench/finetune_defaults.py --chip $(BUNDLED_DATA)/sen1floods11/India_900498 --set seed=$$seed \
			--student $(UNSEEN_RUN)/student/best.pt --teacher $(UNSEEN_RUN)/teacher/best.pt || exit 1; \
	done
