# ballast_add_header_tests(<target> <include-root>): one translation unit per public header, containing
# only `#include <that/header.hpp>`, compiled into an object library. If any header is not
# self-contained, the build (and so the test run) fails and names the header.
function(ballast_add_header_tests target root)
    file(GLOB_RECURSE _headers RELATIVE "${root}" CONFIGURE_DEPENDS "${root}/ballast/*.hpp")
    set(_sources)
    foreach(_h IN LISTS _headers)
        string(MAKE_C_IDENTIFIER "${_h}" _id)
        set(_tu "${CMAKE_CURRENT_BINARY_DIR}/header_tests/${_id}.cpp")
        file(CONFIGURE OUTPUT "${_tu}" CONTENT "#include <${_h}>\n")
        list(APPEND _sources "${_tu}")
    endforeach()
    add_library(${target} OBJECT ${_sources})
    target_link_libraries(${target} PRIVATE ballast_dev)
    # Only parsing matters here; -O0 skips the optimiser (a quarter of the time of these TUs).
    target_compile_options(${target} PRIVATE -O0)
    ballast_set_warnings(${target})
endfunction()
