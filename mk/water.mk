# The bundled water model (issue 13): EO teacher, distilled student and SAR-only student on the labelled real SAR
# of the samples folder (data.water: OMBRIA train with permanent water from its Sentinel-2, the paired dB scenes,
# the dB water chips), scored against the classical thresholds by scripts/water_model_card.py. `train-water`
# pre-trains on WATER_DATASET (default water-no-chips: without the dB water chips, which `water-model` adds by
# fine-tuning). Every step resumes. On a 2-core machine shared with other work, OMP_NUM_THREADS=1 per process
# was 3x faster than torch's default 2 threads (thread contention).
WATER_DATA ?= ../shared/data
WATER_RUN ?= runs/water
WATER_DATASET ?= water-no-chips
WATER_SEED ?= 0
WATER_STEPS_EPOCH ?= 320
# 8 epochs of 320 windows of 128 px: validation mIoU of teacher and SAR-only student was flat after 4-5.
WATER_TEACHER_EPOCHS ?= 8
WATER_EPOCHS ?= 8
# Network size (HFDNetConfig widths, align_dim) of every water model.
WATER_WIDTHS ?= 16 32 64 128
WATER_ALIGN_DIM ?= 48
WATER_ARGS = --root $(WATER_DATA) --split train --val-fraction 0.1 --seed $(WATER_SEED) --tile-size 128 \
	--batch-size 8 --samples-per-epoch $(WATER_STEPS_EPOCH) --lr 2e-3 --widths $(WATER_WIDTHS) \
	--align-dim $(WATER_ALIGN_DIM) --resume --quiet

# `make water-model` runs its independent stages as WATER_JOBS processes of WATER_THREADS threads each.
WATER_JOBS ?= 2
WATER_THREADS ?= 1
WATER_PARALLEL = OMP_NUM_THREADS=$(WATER_THREADS) $(MAKE) -j$(WATER_JOBS)

.PHONY: train-water train-water-distilled

# Pre-training: the teacher, then the student distilled from it; the SAR-only student beside them.
train-water: train-water-distilled train-water-sar-only
train-water-distilled: setup
	@test -d "$(WATER_DATA)/ombria" || { echo "train-water needs WATER_DATA=<samples folder>"; exit 1; }
	$(PY) -m hfd_core train-teacher --dataset $(WATER_DATASET) $(WATER_ARGS) --epochs $(WATER_TEACHER_EPOCHS) \
		--out $(WATER_RUN)/$(WATER_DATASET)/teacher
	$(PY) -m hfd_core train-student --dataset $(WATER_DATASET) $(WATER_ARGS) --epochs $(WATER_EPOCHS) \
		--teacher $(WATER_RUN)/$(WATER_DATASET)/teacher/best.pt --out $(WATER_RUN)/$(WATER_DATASET)/student

# Shipping and scoring, `make water-model`: after the pre-training above without the dB water chips, each student
# variant is fine-tuned with every labelled pixel and once per chip location with that location left out
# (scripts/water_finetune.py, data loaded once); the card scores the held-out models beside the thresholds and
# ships the final student of the variant with the better leave-out pooled water IoU, if it beats them.
# 6 epochs, the best chosen on validation that includes the synthetic water (scripts/water_finetune.py).
WATER_FT_EPOCHS ?= 6
WATER_FINETUNE = $(PY) scripts/water_finetune.py --samples $(WATER_DATA) --run $(WATER_RUN) \
	--epochs $(WATER_FT_EPOCHS) --seed $(WATER_SEED)
# Data-source ablation of the SAR-only student (the card's ablation rows), leave-out folds: fine-tuning without the
# synthetic water, and the same two stages without OMBRIA (pre-training on the paired scenes) and without the
# paired scenes (pre-training on OMBRIA; no synthetic water either, as it is pasted into the paired scenes).
WATER_ABLATION ?= water-paired water-ombria
# Seeds of the SAR-only student besides WATER_SEED (the card's seed rows), each under $(WATER_RUN)/seed<N>/.
WATER_EXTRA_SEEDS ?= 1 2 3 4

# Ensembles of the SAR-only seeds (models.ensemble), each also per leave-out fold: reference rows of the card, not
# shipped (two full-size members take 16.9 minutes for a full Sentinel-1 scene on 2 cores at the default overlap,
# bench/README.md): WATER_ENSEMBLE_SEEDS, by default the first two seeds, fixed before scoring, and every seed.
WATER_ENSEMBLE_SEEDS ?= $(wordlist 1,2,$(WATER_ALL_SEEDS))
WATER_ALL_SEEDS = $(WATER_SEED) $(WATER_EXTRA_SEEDS)

.PHONY: water-model water-variants water-ablation water-seeds water-ensembles water-card water-scene-extent \
	water-pasted-water

# The fine-tuned folds (variants, ablation, seeds) are independent of each other: WATER_JOBS at a time.
water-model: setup
	+$(WATER_PARALLEL) train-water WATER_DATASET=water-no-chips
	+$(WATER_PARALLEL) water-variants water-ablation $(addprefix water-seed-,$(WATER_EXTRA_SEEDS))
	$(MAKE) water-ensembles
	$(MAKE) water-card
	$(MAKE) water-scene-extent
	$(MAKE) water-pasted-water

water-variants: setup
	for variant in student_sar_only student; do \
		$(WATER_FINETUNE) --variant $$variant || exit 1; \
	done

water-ablation: setup
	$(WATER_FINETUNE) --variant student_sar_only --without-synthetic
	for set in $(WATER_ABLATION); do \
		$(MAKE) train-water-sar-only WATER_DATASET=$$set || exit 1; \
		$(WATER_FINETUNE) --variant student_sar_only --pretrained $$set || exit 1; \
	done

water-seeds: $(addprefix water-seed-,$(WATER_EXTRA_SEEDS))
water-seed-%: setup
	$(MAKE) water-sar-only WATER_SEED=$* WATER_RUN=$(WATER_RUN)/seed$*

WATER_ENSEMBLES = $(PY) scripts/water_ensembles.py --run $(WATER_RUN) --base-seed $(WATER_SEED)
water-ensembles: setup
	$(WATER_ENSEMBLES) --seeds $(WATER_ENSEMBLE_SEEDS) --name ensemble
	$(WATER_ENSEMBLES) --seeds $(WATER_ALL_SEEDS) --name ensemble_all_seeds

# One SAR-only student, both stages: pre-training without the dB chips, then the fine-tuned folds.
.PHONY: train-water-sar-only water-sar-only
train-water-sar-only: setup
	$(PY) -m hfd_core train-student --dataset $(WATER_DATASET) $(WATER_ARGS) --epochs $(WATER_EPOCHS) --no-distill \
		--out $(WATER_RUN)/$(WATER_DATASET)/student_sar_only
water-sar-only: train-water-sar-only
	$(WATER_FINETUNE) --variant student_sar_only

water-card: setup
	$(PY) scripts/water_model_card.py --samples $(WATER_DATA) --run $(WATER_RUN) --models resources/models \
		--seed $(WATER_SEED) --command "make water-model"

# The chosen variant's leave-out folds on windows of the dB chips, each window a scene of its own, beside the
# thresholds (the cards' "Scene extent" section; after water-card, which keeps the section when it rewrites them).
water-scene-extent: setup
	$(PY) scripts/water_scene_extent.py --samples $(WATER_DATA) --run $(WATER_RUN)

# Label-free check: open water pasted into the dry dB chips at 30, 60 and 90 % of the chip, mapped by every
# variant's final model and leave-out folds and by the ablation folds (the cards' "Water pasted" section; after
# water-card, which keeps the section when it rewrites them). A diagnostic, not a shipping rule.
water-pasted-water: setup
	$(PY) scripts/water_pasted_water.py --samples $(WATER_DATA) --run $(WATER_RUN)
