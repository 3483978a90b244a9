# Two commands do all set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.vidcat-installed
DEMO_DATA ?= data/motion
DEMO_RUN  ?= runs/demo
DEMO_MODEL ?= tiny3d
# Two cores here: two intra-op threads, one loader worker keeps decode overlapped.
export OMP_NUM_THREADS ?= 2

.PHONY: demo test venv clean bench zoo

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,text,serve,weights,ray,browser,speech]'
	# the pose stream's bundled models (mediapipe 0.10.21, its last release that ships them): without its
	# numpy<2 / protobuf<5 pins, which the rest of the stack outgrew (vidcat/io/pose.py bridges protobuf)
	$(BIN)/python -m pip install -q --no-deps 'mediapipe==0.10.21' absl-py || echo "vidcat: no mediapipe 0.10.21 wheel here: the pose tests skip"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/vidcat synth $(DEMO_DATA) --kind motion --per-class 80 --seed 0
	$(BIN)/vidcat train --data $(DEMO_DATA)/train.csv --val $(DEMO_DATA)/val.csv --model $(DEMO_MODEL) --out $(DEMO_RUN) --epochs 10
	$(BIN)/vidcat eval --checkpoint $(DEMO_RUN)/best.pt --data $(DEMO_DATA)/test.csv --json $(DEMO_RUN)/eval.json
	$(BIN)/vidcat predict --checkpoint $(DEMO_RUN)/best.pt $(DEMO_DATA)/test/left $(DEMO_DATA)/test/up --topk 2 | head -n 6
	$(BIN)/vidcat report $(DEMO_RUN)

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/vidcat bench decode

clean:
	rm -rf $(VENV) runs data
