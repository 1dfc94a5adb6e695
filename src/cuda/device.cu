/* device.cu — finding a usable CUDA device. Without a GPU (or driver) cudaGetDeviceCount fails,
 * and that is reported as LD_E_NODEVICE with the CUDA runtime's own words. */
#include <cuda_runtime.h>

#include <cstdio>

#include "cuda_backend.h"

extern "C" ld_status ld_cuda_device_check(char *desc, size_t desc_size, ld_error *err)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* clear the non-sticky error */
        return ld_error_set(err, LD_E_NODEVICE, "no usable CUDA device: %s (%s)",
                            cudaGetErrorString(e), cudaGetErrorName(e));
    }
    if (n == 0)
        return ld_error_set(err, LD_E_NODEVICE, "no usable CUDA device: the driver reports none");
    cudaDeviceProp prop;
    e = cudaGetDeviceProperties(&prop, 0);
    if (e != cudaSuccess)
        return ld_error_set(err, LD_E_NODEVICE, "cannot query CUDA device 0: %s",
                            cudaGetErrorString(e));
    if (desc && desc_size)
        snprintf(desc, desc_size, "%s (sm_%d%d, %.1f GiB)", prop.name, prop.major, prop.minor,
                 (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return LD_OK;
}
