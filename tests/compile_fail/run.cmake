# Compile SOURCE (syntax only) against ballast and pass iff compilation FAILS with EXPECT in its output.
execute_process(COMMAND ${CXX} -std=c++20 -fsyntax-only -fopenmp ${INCLUDES} ${SOURCE}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
    message(FATAL_ERROR "${SOURCE} compiled, but it must be refused")
endif()
string(FIND "${err}" "${EXPECT}" pos)
if(pos EQUAL -1)
    message(FATAL_ERROR "${SOURCE} failed without the expected message '${EXPECT}':\n${err}")
endif()
