# Builds and runs tests/package/consumer against ballast, either installed into a fresh prefix
# (MODE=install: configure ballast alone, install, then find_package from the prefix) or pulled in
# with add_subdirectory (MODE=subdirectory). Fails loudly at the first failing step.
cmake_minimum_required(VERSION 3.21)
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

function(run)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "step failed (${rc}): ${ARGN}\n${out}\n${err}")
    endif()
endfunction()

if(MODE STREQUAL "install")
    run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/ballast-build" -DCMAKE_BUILD_TYPE=Release
        -DBALLAST_BUILD_TESTS=OFF -DBALLAST_BUILD_EXAMPLES=OFF -DBALLAST_BUILD_BENCHMARKS=OFF
        -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix)
    run(${CMAKE_COMMAND} --install "${WORK_DIR}/ballast-build")
    run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/package/consumer" -B "${WORK_DIR}/consumer-build"
        -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
else()
    file(WRITE "${WORK_DIR}/parent/CMakeLists.txt"
         "cmake_minimum_required(VERSION 3.21)\nproject(parent LANGUAGES CXX)\n"
         "add_subdirectory(\"${SOURCE_DIR}\" ballast)\n"
         "set(BALLAST_CONSUMER_IN_TREE ON)\nadd_subdirectory(\"${SOURCE_DIR}/tests/package/consumer\" consumer)\n")
    run(${CMAKE_COMMAND} -S "${WORK_DIR}/parent" -B "${WORK_DIR}/consumer-build" -DCMAKE_BUILD_TYPE=Release)
endif()
run(${CMAKE_COMMAND} --build "${WORK_DIR}/consumer-build" -j 2)
file(GLOB_RECURSE exe "${WORK_DIR}/consumer-build/ballast_consumer")
run(${exe})
