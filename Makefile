# Two commands do all set-up: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.vidcat-installed
DEMO_DATA ?= data/motion
DEMO_RUN  ?= runs/demo
DEMO_PER_CLASS ?= 24
# Two cores here: the default's clip workers run one thread each; a model from the zoo uses two intra-op threads.
export OMP_NUM_THREADS ?= 2

.PHONY: demo test venv clean bench zoo

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,text,serve,weights,fast,ray,browser,speech]'
	# the pose stream's bundled models (mediapipe 0.10.21, its last release that ships them): without its
	# numpy<2 / protobuf<5 pins, which the rest of the stack outgrew (vidcat/io/pose.py bridges protobuf)
	$(BIN)/python -m pip install -q --no-deps 'mediapipe==0.10.21' absl-py || echo "vidcat: no mediapipe 0.10.21 wheel here: the pose tests skip"
	# the ocr extra (bundled PP-OCRv4 models): its requirements, then rapidocr-onnxruntime 1.4.4 without its
	# opencv-python pin, which would put a second cv2 beside opencv-python-headless
	$(BIN)/python -m pip install -q 'pyclipper>=1.2' 'shapely>=1.7.1,!=2.0.4' 'six>=1.15' PyYAML Pillow 'onnxruntime>=1.16'
	$(BIN)/python -m pip install -q --no-deps 'rapidocr-onnxruntime==1.4.4' || echo "vidcat: no rapidocr-onnxruntime 1.4.4 wheel here (Python >= 3.13): the ocr tests skip"
	touch $(STAMP)

# What the README recommends: the default model (no --model) on the synthetic motion benchmark, then eval,
# predict and the report. Run it as often as you like: the data is made once, the run folder starts afresh,
# and the feature cache keeps what an earlier run extracted.
demo: $(STAMP)
	test -f $(DEMO_DATA)/test.csv || $(BIN)/vidcat synth $(DEMO_DATA) --kind motion --per-class $(DEMO_PER_CLASS) --seed 0
	rm -rf $(DEMO_RUN)
	$(BIN)/vidcat train --data $(DEMO_DATA)/train.csv --val $(DEMO_DATA)/val.csv --out $(DEMO_RUN)
	$(BIN)/vidcat eval --checkpoint $(DEMO_RUN)/best.pt --data $(DEMO_DATA)/test.csv --json $(DEMO_RUN)/eval.json
	$(BIN)/vidcat predict --checkpoint $(DEMO_RUN)/best.pt $(DEMO_DATA)/test/left $(DEMO_DATA)/test/up --topk 2 | head -n 6
	$(BIN)/vidcat report $(DEMO_RUN)
	@$(BIN)/python -c "import json; c = json.load(open('$(DEMO_RUN)/config.json')); print(c['recipe']['line'])"

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/vidcat bench decode

clean:
	rm -rf $(VENV) runs data
