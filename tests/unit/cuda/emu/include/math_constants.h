/* EMULATION ONLY (tests/unit/cuda/emu): stands in for the CUDA header of that name. */
#define CUDART_NAN __builtin_nan("")
