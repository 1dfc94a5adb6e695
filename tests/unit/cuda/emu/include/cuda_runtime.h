/* EMULATION ONLY (tests/unit/cuda/emu): stands in for the CUDA header of that name. */
#include "cuda_runtime_api.h"
