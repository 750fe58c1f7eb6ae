# The bundled water model (issue 13): EO teacher, distilled student and SAR-only student on every labelled real
# SAR pixel of the samples folder (data.water: OMBRIA train with permanent water from its Sentinel-2, the paired
# dB scenes, the dB water chips), scored against the classical thresholds by scripts/water_model_card.py.
# WATER_DATASET=water-no-chips trains without the dB water chips (they are then all held out). Every step resumes.
WATER_DATA ?= ../shared/data
WATER_RUN ?= runs/water
WATER_DATASET ?= water
WATER_SEED ?= 0
WATER_STEPS_EPOCH ?= 320
# Teacher: the EO task is easy (validation mIoU flat after a few epochs); 8 epochs of 320 windows for the students too (2 x 45 min on 2 shared cores).
WATER_TEACHER_EPOCHS ?= 8
WATER_EPOCHS ?= 8
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

# Shipping and scoring (run by `make water-model` after `make train-water WATER_DATASET=water-no-chips`):
# the pre-trained students are fine-tuned with the dB water chips added (dataset `water`: every labelled pixel),
# and, for the leave-one-location-out rows, once per chip location with that location left out.
WATER_PRETRAIN = $(WATER_RUN)/water-no-chips
WATER_FINAL = $(WATER_RUN)/water
WATER_CHIP_GROUPS ?= chip-India chip-Spain chip-Sri-Lanka chip-Ghana stac-qxb32 stac-awc00
WATER_FT_EPOCHS ?= 3
WATER_FT_ARGS = --dataset water $(subst --lr 2e-3,--lr 5e-4,$(WATER_ARGS)) --epochs $(WATER_FT_EPOCHS)
WATER_TEACHER = --teacher $(WATER_PRETRAIN)/teacher/best.pt

.PHONY: water-model water-card

water-model: setup
	$(MAKE) train-water WATER_DATASET=water-no-chips
	$(PY) -m hfd_core train-student $(WATER_FT_ARGS) $(WATER_TEACHER) \
		--init-from $(WATER_PRETRAIN)/student/best.pt --out $(WATER_FINAL)/student
	$(PY) -m hfd_core train-student $(WATER_FT_ARGS) --no-distill \
		--init-from $(WATER_PRETRAIN)/student_sar_only/best.pt --out $(WATER_FINAL)/student_sar_only
	for group in $(WATER_CHIP_GROUPS); do \
		$(PY) -m hfd_core train-student $(WATER_FT_ARGS) $(WATER_TEACHER) --leave-out $$group \
			--init-from $(WATER_PRETRAIN)/student/best.pt --out $(WATER_RUN)/leave-out/$$group || exit 1; \
	done
	$(MAKE) water-card

water-card: setup
	$(PY) scripts/water_model_card.py --samples $(WATER_DATA) --run $(WATER_RUN) --models resources/models \
		--chip-groups "$(WATER_CHIP_GROUPS)" --command "make water-model"
