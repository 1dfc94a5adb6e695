# Third-party libraries, all from Debian packages (make deps installs them):
# cJSON and zlib for the probe library, OpenMP for the reference, cmocka for tests.
find_path(CJSON_INCLUDE_DIR cjson/cJSON.h)
find_library(CJSON_LIBRARY cjson)
if(NOT CJSON_INCLUDE_DIR OR NOT CJSON_LIBRARY)
  message(FATAL_ERROR "cJSON not found: install libcjson-dev (or run 'make deps')")
endif()
add_library(ld_cjson INTERFACE)
target_include_directories(ld_cjson SYSTEM INTERFACE ${CJSON_INCLUDE_DIR})
target_link_libraries(ld_cjson INTERFACE ${CJSON_LIBRARY})

find_package(ZLIB REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS C)
find_package(Threads REQUIRED)

find_path(CMOCKA_INCLUDE_DIR cmocka.h)
find_library(CMOCKA_LIBRARY cmocka)
if(NOT CMOCKA_INCLUDE_DIR OR NOT CMOCKA_LIBRARY)
  message(FATAL_ERROR "cmocka not found: install libcmocka-dev (or run 'make deps')")
endif()
add_library(ld_cmocka INTERFACE)
target_include_directories(ld_cmocka SYSTEM INTERFACE ${CMOCKA_INCLUDE_DIR})
target_link_libraries(ld_cmocka INTERFACE ${CMOCKA_LIBRARY})

# Debian's python3 carries numpy and jsonschema; a pyenv or venv python on PATH may not.
if(NOT LD_PYTHON)
  foreach(_py /usr/bin/python3 python3)
    execute_process(COMMAND ${_py} -c "import numpy, jsonschema"
                    RESULT_VARIABLE _py_rc OUTPUT_QUIET ERROR_QUIET)
    if(_py_rc EQUAL 0)
      set(LD_PYTHON ${_py} CACHE FILEPATH "Python 3 with numpy and jsonschema" FORCE)
      break()
    endif()
  endforeach()
endif()
if(NOT LD_PYTHON)
  message(WARNING "No python3 with numpy and jsonschema: oracle and schema tests will fail. Run 'make deps'.")
  set(LD_PYTHON python3)
endif()
