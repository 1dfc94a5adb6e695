/* device.c — finding a usable CUDA device, and what the probe header says about it and about the
 * CUDA path's numerics. Without a GPU (or driver) cudaGetDeviceCount fails; that is LD_E_NODEVICE
 * with the CUDA runtime's own words. */
#include <stdio.h>
#include <stdlib.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "cuda_backend.h"
#include "cuda_check.h"
#include "weights.h"

ld_status ld_cuda_device_check(char *desc, size_t desc_size, ld_error *err)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* clear the non-sticky error */
        return ld_error_set(err, LD_E_NODEVICE, "no usable CUDA device: %s (%s)",
                            cudaGetErrorString(e), cudaGetErrorName(e));
    }
    if (n == 0)
        return ld_error_set(err, LD_E_NODEVICE, "no usable CUDA device: the driver reports none");
    struct cudaDeviceProp prop;
    e = cudaGetDeviceProperties(&prop, 0);
    if (e != cudaSuccess)
        return ld_error_set(err, LD_E_NODEVICE, "cannot query CUDA device 0: %s",
                            cudaGetErrorString(e));
    if (desc && desc_size)
        snprintf(desc, desc_size, "%s (sm_%d%d, %.1f GiB)", prop.name, prop.major, prop.minor,
                 (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return LD_OK;
}

ld_status ld_cuda_device_info_get(ld_cuda_device_info *out, ld_error *err)
{
    ld_status st = ld_cuda_device_check(NULL, 0, err);
    if (st != LD_OK)
        return st;
    struct cudaDeviceProp prop;
    LD_CUDA_CHECK(err, cudaGetDeviceProperties(&prop, 0));
    snprintf(out->name, sizeof out->name, "%s", prop.name);
    out->sm_major = prop.major;
    out->sm_minor = prop.minor;
    out->mem_gib = (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0);
    LD_CUDA_CHECK(err, cudaDriverGetVersion(&out->driver));
    LD_CUDA_CHECK(err, cudaRuntimeGetVersion(&out->runtime));
    LD_CUBLAS_CHECK(err, cublasGetProperty(MAJOR_VERSION, &out->cublas_major));
    LD_CUBLAS_CHECK(err, cublasGetProperty(MINOR_VERSION, &out->cublas_minor));
    LD_CUBLAS_CHECK(err, cublasGetProperty(PATCH_LEVEL, &out->cublas_patch));
    return LD_OK;
}

/* Keeps a device name safe inside a JSON string (names are plain ASCII in practice). */
static void json_safe(char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
            *s = '_';
}

char *ld_cuda_backend_json(const ld_model *m, ld_error *err)
{
    ld_cuda_device_info di;
    if (ld_cuda_device_info_get(&di, err) != LD_OK)
        return NULL;
    json_safe(di.name);
    ld_dtype from = ld_cuda_weights_rounded_from(m);
    size_t size = 2048;
    char *s = malloc(size);
    if (!s) {
        ld_error_set(err, LD_E_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(s, size,
             "{\"name\":\"cuda\",\"device\":\"%s\",\"sm\":\"%d.%d\",\"driver\":\"%d.%d\","
             "\"runtime\":\"%d.%d\",\"cublas\":\"%d.%d.%d\",\"compute_dtype\":\"bf16\","
             "\"accumulation\":\"f32\",\"activations\":\"bf16\",\"residual_dtype\":\"bf16\","
             "\"weights\":\"bf16\",\"checkpoint_dtype\":\"%s\",\"weights_rounded\":%s,"
             "\"matmul\":\"cublasGemmEx bf16 x bf16 -> bf16, CUBLAS_COMPUTE_32F\","
             "\"tf32\":false,\"softmax\":\"f32 online\",\"probe_stats\":\"device, f64\"}",
             di.name, di.sm_major, di.sm_minor, di.driver / 1000, (di.driver % 1000) / 10,
             di.runtime / 1000, (di.runtime % 1000) / 10, di.cublas_major, di.cublas_minor,
             di.cublas_patch, ld_dtype_name(from),
             from == LD_BF16 ? "false" : "true");
    return s;
}
