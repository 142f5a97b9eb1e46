# ballast_set_warnings(<target>): warnings for ballast's own binaries only (never the INTERFACE target).
function(ballast_set_warnings target)
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wno-unknown-pragmas)
    if(BALLAST_WARNINGS_AS_ERRORS)
        target_compile_options(${target} PRIVATE -Werror)
    endif()
endfunction()
