/* launch.cu — whether the kernels a thread launches through ld_launch are programmatic launches
 * (cuda_check.h: ld_cuda_set_pdl, ld_cuda_pdl; cuda_common.cuh: ld_launch, ld_grid_wait). */
#include <atomic>

#include "cuda_common.cuh"

/* Compiled with every other kernel of cuda/ (one set of architecture flags), so its PTX version
 * is theirs: 90 or more means their ld_grid_wait holds the griddepcontrol instructions. Never
 * launched. */
__global__ static void pdl_arch_kernel() {}

static thread_local bool pdl_on = false;

/* Device and kernels support programmatic launches (decided once: one device per process). */
static bool pdl_supported(void)
{
    static std::atomic<int> known{-1};
    int v = known.load();
    if (v >= 0)
        return v == 1;
    int dev = 0, major = 0;
    cudaFuncAttributes fa = {};
    bool ok = cudaGetDevice(&dev) == cudaSuccess &&
              cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) ==
                  cudaSuccess &&
              cudaFuncGetAttributes(&fa, pdl_arch_kernel) == cudaSuccess && major >= 9 &&
              fa.ptxVersion >= 90;
    if (!ok)
        (void)cudaGetLastError(); /* a failed query is an answer (no), not an error to carry */
    known.store(ok ? 1 : 0);
    return ok;
}

extern "C" bool ld_cuda_set_pdl(bool on)
{
    pdl_on = on && pdl_supported();
    return pdl_on;
}

extern "C" bool ld_cuda_pdl(void) { return pdl_on; }
