# Cross build for aarch64 (64-bit Arm: Grace, Graviton) with Debian's cross compiler
# (gcc-aarch64-linux-gnu) and the arm64 libraries of Debian multiarch (libcjson-dev:arm64,
# zlib1g-dev:arm64, libcmocka-dev:arm64); scripts/deps.sh installs them (LD_AARCH64_DEPS=1).
# Tests run under qemu-user: ctest puts CMAKE_CROSSCOMPILING_EMULATOR before every test program,
# and the script tests get LD_BIN, a wrapper that does the same (cmake/LdTesting.cmake).
# Used by 'make test-aarch64' (scripts/test_aarch64.sh); the CUDA path is off in this build.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# Libraries and headers of the target only: the multiarch folders (/usr/lib/aarch64-linux-gnu,
# /usr/include) and the cross toolchain's own (/usr/aarch64-linux-gnu); programs from the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

find_program(LD_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64)
if(LD_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${LD_QEMU_AARCH64} -L /usr/aarch64-linux-gnu)
endif()
