# ld_add_unit_test(NAME SOURCES... LIBS ... [LABELS ...] [ARGS ...]): one cmocka executable per
# test file, registered with ctest (run with ARGS). Exit code 77 means "skipped" (GPU tests without
# a GPU).
function(ld_add_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS;ARGS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} ld_util ld_cmocka ld_flags m)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/unit
                                             ${PROJECT_BINARY_DIR}/generated)
  ld_add_unit_test_run(${name} ${name} ARGS ${T_ARGS} LABELS ${T_LABELS})
endfunction()

# ld_add_unit_test_run(TEST EXECUTABLE [ARGS ...] [LABELS ...]): one more ctest test running a
# unit test executable of ld_add_unit_test, with the same environment.
function(ld_add_unit_test_run name exe)
  cmake_parse_arguments(T "" "" "ARGS;LABELS" ${ARGN})
  add_test(NAME ${name} COMMAND ${exe} ${T_ARGS})
  set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE 77
                       ENVIRONMENT "LD_TEST_DATA=${PROJECT_SOURCE_DIR}/tests/data;LD_BIN=$<TARGET_FILE:layerdiff>")
  if(T_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}")
  endif()
endfunction()

# ld_add_script_test(NAME COMMAND... [LABELS ...]): a shell or python test run from the build dir.
function(ld_add_script_test name)
  cmake_parse_arguments(T "" "" "COMMAND;LABELS" ${ARGN})
  add_test(NAME ${name} COMMAND ${T_COMMAND})
  set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE 77
                       ENVIRONMENT "LD_BIN=$<TARGET_FILE:layerdiff>;LD_PYTHON=${LD_PYTHON};LD_SRC=${PROJECT_SOURCE_DIR}")
  if(T_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}")
  endif()
endfunction()
