# Strict warnings for every C target of the project, sanitizers on request, and no fast-math:
# the reference must be bit-reproducible, so floating-point contraction is off as well.
set(LD_C_WARNINGS
    -Wall -Wextra -Wshadow -Wconversion -Wno-sign-conversion -Wformat=2 -Wno-format-truncation
    -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wundef -Wvla
    -Wnull-dereference -Wdouble-promotion -Wno-error=double-promotion)
# -Wdouble-promotion stays a warning only: implicit float->double is common in stats code,
# and we want to see it, not to be blocked by it.
list(REMOVE_ITEM LD_C_WARNINGS -Wdouble-promotion -Wno-error=double-promotion)

add_library(ld_flags INTERFACE)
target_compile_options(ld_flags INTERFACE
    $<$<COMPILE_LANGUAGE:C>:${LD_C_WARNINGS} -ffp-contract=off -fno-fast-math>)
target_compile_definitions(ld_flags INTERFACE _GNU_SOURCE)
if(LD_WERROR)
  target_compile_options(ld_flags INTERFACE $<$<COMPILE_LANGUAGE:C>:-Werror>)
endif()
if(LD_SANITIZE)
  target_compile_options(ld_flags INTERFACE
      $<$<COMPILE_LANGUAGE:C>:-fsanitize=${LD_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all>)
  target_link_options(ld_flags INTERFACE -fsanitize=${LD_SANITIZE})
endif()
