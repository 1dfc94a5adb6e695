/* cuda_backend.h — the C interface of the optimized CUDA path (src/cuda/). Callable from C; the
 * implementation is CUDA C++. */
#ifndef LD_CUDA_BACKEND_H
#define LD_CUDA_BACKEND_H

#include <stddef.h>

#include "layerdiff/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* LD_OK with a one-line description of device 0, or LD_E_NODEVICE saying why there is none. */
ld_status ld_cuda_device_check(char *desc, size_t desc_size, ld_error *err);

#ifdef __cplusplus
}
#endif
#endif
