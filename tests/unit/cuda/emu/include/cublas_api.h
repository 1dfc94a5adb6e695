/* EMULATION ONLY (tests/unit/cuda/emu): stands in for the CUDA header of that name. */
#include "cublas_v2.h"
