# Warnings for our own targets only (third-party headers are system includes).
# CEPHEUS_WERROR (on in CI, scripts/test.sh) turns them into errors, except two
# that GCC 12 raises inside libstdc++ itself on valid code (std::regex's
# std::function "may be used uninitialized", and -Wrestrict on a string
# concatenation: known false positives of GCC 12), which stay warnings.
option(CEPHEUS_WERROR "Treat compiler warnings as errors" OFF)
function(cepheus_target_options target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter)
  if(CEPHEUS_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
    if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
      target_compile_options(${target} PRIVATE -Wno-error=maybe-uninitialized
                                               -Wno-error=restrict)
    endif()
  endif()
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR})
endfunction()
