# LdGitRev.cmake — writes generated/ld_version.h with the source tree's git revision, at configure
# time and (as `cmake -P` from the ld_version target) at every build, so that probe headers, floors,
# reports and --version name the commit a binary was built from, not the one the build directory
# was configured at. "-dirty" follows when tracked files differ from that commit; "unknown" outside
# a git checkout. configure_file leaves an unchanged header alone, so nothing recompiles until the
# revision changes.
#   cmake -DLD_SRC=DIR -DLD_OUT=FILE -DPROJECT_VERSION=X.Y.Z -P LdGitRev.cmake   (or include() it)
execute_process(COMMAND git rev-parse --short=12 HEAD
                WORKING_DIRECTORY ${LD_SRC}
                OUTPUT_VARIABLE LD_GIT_REV OUTPUT_STRIP_TRAILING_WHITESPACE
                ERROR_QUIET RESULT_VARIABLE _ld_git_rc)
if(NOT _ld_git_rc EQUAL 0 OR LD_GIT_REV STREQUAL "")
  set(LD_GIT_REV "unknown")
else()
  execute_process(COMMAND git status --porcelain --untracked-files=no
                  WORKING_DIRECTORY ${LD_SRC}
                  OUTPUT_VARIABLE _ld_git_status ERROR_QUIET RESULT_VARIABLE _ld_git_rc)
  if(_ld_git_rc EQUAL 0 AND NOT _ld_git_status STREQUAL "")
    string(APPEND LD_GIT_REV "-dirty")
  endif()
endif()
configure_file(${LD_SRC}/cmake/ld_version.h.in ${LD_OUT} @ONLY)
