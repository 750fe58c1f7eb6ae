# The bundled water model (issue 13): EO teacher, distilled student and SAR-only student on every labelled real
# SAR pixel of the samples folder (data.water: OMBRIA train with permanent water from its Sentinel-2, the paired
# dB scenes, the dB water chips), scored against the classical thresholds by scripts/water_model_card.py.
# WATER_DATASET=water-no-chips trains without the dB water chips (they are then all held out). Every step resumes.
WATER_DATA ?= ../shared/data
WATER_RUN ?= runs/water
WATER_DATASET ?= water
WATER_SEED ?= 0
WATER_STEPS_EPOCH ?= 320
# Teacher: the EO task is easy (validation mIoU flat after a few epochs); the students need longer.
WATER_TEACHER_EPOCHS ?= 8
WATER_EPOCHS ?= 12
WATER_ARGS = --root $(WATER_DATA) --split train --val-fraction 0.1 --seed $(WATER_SEED) --tile-size 128 \
	--batch-size 8 --samples-per-epoch $(WATER_STEPS_EPOCH) --lr 2e-3 --widths 16 32 64 128 --align-dim 48 \
	--resume --quiet

.PHONY: train-water

train-water: setup
	@test -d "$(WATER_DATA)/ombria" || { echo "train-water needs WATER_DATA=<samples folder>"; exit 1; }
	$(PY) -m hfd_core train-teacher --dataset $(WATER_DATASET) $(WATER_ARGS) --epochs $(WATER_TEACHER_EPOCHS) \
		--out $(WATER_RUN)/$(WATER_DATASET)/teacher
	$(PY) -m hfd_core train-student --dataset $(WATER_DATASET) $(WATER_ARGS) --epochs $(WATER_EPOCHS) \
		--teacher $(WATER_RUN)/$(WATER_DATASET)/teacher/best.pt --out $(WATER_RUN)/$(WATER_DATASET)/student
	$(PY) -m hfd_core train-student --dataset $(WATER_DATASET) $(WATER_ARGS) --epochs $(WATER_EPOCHS) \
		--no-distill --out $(WATER_RUN)/$(WATER_DATASET)/student_sar_only
