# layerdiff — the commands people type. CMake does the building; this file only drives it.
#   make deps    install missing Debian packages (apt-get; needs root when something is missing)
#   make         configure and build into build/
#   make test    deps + build + every test (ctest), then the sanitizer build, make test-cuda-emu
#                and make test-aarch64
#   make test-cuda-emu  the CUDA path's kernels, GPU unit tests and a probed run on the CPU
#                emulation of the CUDA runtime, with ASan + UBSan (no GPU, no nvcc needed)
#   make demo    deps + build + generate a tiny model, run reference and candidate, compare
#   make bench   deps + build + benchmarks (tests/bench/), figures on stdout
#   make zoo     the fault-zoo localization table
#   make test-aarch64  cross-build for aarch64 (Debian's cross gcc), run the reference op tests,
#                the number writer's test, the tiny oracle and the same-bits check against this
#                build under qemu-user
#   make gpu-pack  what scripts/gpu_check.sh needs of the CUDA build, with its libraries, into
#                  .gpu-pack/ for a GPU machine without the build's packages (docs/cuda.md)
#   make python-deps  .venv-py: the Python package with torch + transformers from PyPI (~5 min,
#                     ~5.6 GB); the py_torch test runs against it
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=

CROSS_BUILD ?= build-aarch64

.PHONY: all build deps deps-aarch64 test test-aarch64
.PHONY: test-fast test-asan test-cuda-emu demo bench zoo format clean python-deps gpu-pack

all: build

deps:
	@bash scripts/deps.sh

deps-aarch64:
	@LD_AARCH64_DEPS=1 bash scripts/deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DLD_WERROR=ON $(CMAKE_ARGS)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# Everything CI runs. The sanitizer pass rebuilds the C code (no CUDA) with ASan+UBSan and runs
# the tests labelled 'asan': all but the GPU, slow and larger zoo ones.
# ctest shows a skipped test as "Skipped" only; the reason each one printed ("skipped: no usable
# CUDA device ...") is in its log, and SKIP_REASONS prints it once per reason.
SKIP_REASONS = grep -h '^skipped:' $(abspath $(BUILD))/Testing/Temporary/LastTest.log 2>/dev/null | sort -u || true

test: deps
	$(MAKE) build
	@echo "make test: every test, the sanitizer build, the CUDA emulation (test-cuda-emu), then"
	@echo "test-aarch64; about 18 minutes on 2 cores (make test-fast skips the slow ones)"
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS); rc=$$?; $(SKIP_REASONS); exit $$rc
	$(MAKE) test-asan
	$(MAKE) test-cuda-emu
	$(MAKE) test-aarch64

# The CUDA path without a GPU (tests/unit/cuda/emu/run.sh): cuda/ and probes/cuda/ compiled by g++
# against a CPU emulation of the CUDA runtime, with AddressSanitizer, UBSan and LeakSanitizer;
# test_cuda_kernels, test_cuda_probes, a probed tiny run with decode steps, and the verdicts of the
# compute-sanitizer tests (sanitize_judge.sh). An access past a device allocation, dynamic or
# static shared memory, a misaligned vector access or a leak fails it. About 11 minutes on 2 cores
# (thousands of threads per launch).
test-cuda-emu: build
	LD_EMU_SAN=address bash tests/unit/cuda/emu/run.sh $(BUILD)

# aarch64 under qemu-user: 45 s to 2 minutes on 2 shared cores (cross build included), plus the
# packages on a fresh machine (deps-aarch64).
test-aarch64: deps-aarch64
	$(MAKE) build
	JOBS=$(JOBS) bash scripts/test_aarch64.sh $(BUILD) $(CROSS_BUILD)

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE slow; rc=$$?; $(SKIP_REASONS); exit $$rc

test-asan:
	cmake -S . -B $(ASAN_BUILD) -DLD_WERROR=ON -DLD_CUDA=OFF -DLD_SANITIZE=address,undefined \
	      -DCMAKE_BUILD_TYPE=Debug $(CMAKE_ARGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS) -L asan

# The build's output goes to a log, shown only when the build fails: the demo's story is the
# comparison, not 400 lines of compiler progress.
demo: deps
	@echo "== building layerdiff into $(BUILD)/ (log: $(BUILD)/demo-build.log)"
	@mkdir -p $(BUILD)
	@$(MAKE) --no-print-directory build >$(BUILD)/demo-build.log 2>&1 || \
	  { cat $(BUILD)/demo-build.log; echo "demo: the build failed (output above)" >&2; exit 1; }
	@bash scripts/demo.sh $(BUILD)

python-deps:
	LD_PYTHON_DEPS=1 bash scripts/deps.sh
	bash scripts/python_deps.sh

bench: deps
	LD_BENCH_DEPS=1 bash scripts/deps.sh
	$(MAKE) build
	bash scripts/bench.sh $(BUILD)

gpu-pack: build
	bash scripts/gpu_pack.sh $(BUILD) .gpu-pack

zoo: deps
	$(MAKE) build
	bash scripts/zoo.sh $(BUILD)

format:
	find probes src reference compare tests examples -name '*.[ch]' -o -name '*.cu' -o -name '*.cuh' \
	  | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(CROSS_BUILD)
