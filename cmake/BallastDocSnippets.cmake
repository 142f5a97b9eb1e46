# ballast_add_doc_snippets(<target> FILES <md>...): every ```cpp block of the given Markdown files is
# compiled, so documentation code cannot rot. At configure time each Markdown file with C++ blocks becomes one
# translation unit under ${CMAKE_CURRENT_BINARY_DIR}/doc_snippets/ (editing a file re-runs the extraction);
# `#line` directives make a compile error name the Markdown file and line. The TUs form an object library
# <target>, built with -O0 (only compiling matters) and ballast's warnings, minus the unused-entity warnings
# a fragment naturally triggers.
#
# Convention: an HTML comment right before a block (invisible on a rendered page) says how to compile it.
#
#   (no comment)                  namespace scope: declarations (recipes, structs, constexpr grids)
#   <!-- snippet: body -->        the block is the body of a function (statements)
#   <!-- snippet: skip (why) -->  not compiled (e.g. a synopsis of declarations from a header)
#
# A `body` or namespace-scope comment may carry hidden setup lines, compiled before the block but not shown,
# for the names a fragment assumes (its inputs), e.g.
#
#   <!-- snippet: body
#   std::vector<std::int32_t> tokens(64), targets(64);
#   -->
#
# `#include` lines, in the block or the setup, are hoisted to the top of the TU. Every block is wrapped in
# its own namespace, so blocks of one file may reuse names.

function(_ballast_snippet_decode out text)
    string(REPLACE "@BALLAST_SC@" ";" text "${text}")
    string(REPLACE "@BALLAST_LB@" "[" text "${text}")
    string(REPLACE "@BALLAST_RB@" "]" text "${text}")
    set(${out} "${text}" PARENT_SCOPE)
endfunction()

# Writes the TU for one Markdown file into ${out_var} (empty when the file has no compiled block).
function(_ballast_extract_snippets md rel tu_path out_var)
    file(READ "${md}" content)
    # CMake lists split on ';' and do not split inside unbalanced brackets: encode both, split on newlines.
    string(REPLACE ";" "@BALLAST_SC@" content "${content}")
    string(REPLACE "[" "@BALLAST_LB@" content "${content}")
    string(REPLACE "]" "@BALLAST_RB@" content "${content}")
    string(REPLACE "\n" ";" lines "${content}")

    set(includes "")
    set(bodies "")
    set(state "text") # text | setup | block
    set(mode "")
    set(setup "")
    set(block "")
    set(count 0)
    set(n 0)
    foreach(line IN LISTS lines)
        math(EXPR n "${n} + 1")
        if(state STREQUAL "setup")
            if(line MATCHES "^[ \t]*-->[ \t]*$")
                set(state "text")
            else()
                list(APPEND setup "${n}|${line}")
            endif()
        elseif(state STREQUAL "block")
            if(line MATCHES "^```[ \t]*$")
                set(state "text")
                if(mode STREQUAL "")
                    set(mode "namespace")
                endif()
                if(NOT mode STREQUAL "skip")
                    math(EXPR count "${count} + 1")
                    set(code "")
                    set(next_code -1) # the Markdown line the next code line is at without a new #line
                    foreach(entry IN LISTS setup block)
                        string(REGEX MATCH "^[0-9]+" ln "${entry}")
                        string(REGEX REPLACE "^[0-9]+\\|" "" src "${entry}")
                        _ballast_snippet_decode(src "${src}")
                        if(src MATCHES "^[ \t]*#[ \t]*include")
                            string(APPEND includes "#line ${ln} \"${rel}\"\n${src}\n")
                        else()
                            if(NOT ln EQUAL next_code)
                                string(APPEND code "#line ${ln} \"${rel}\"\n")
                            endif()
                            string(APPEND code "${src}\n")
                            math(EXPR next_code "${ln} + 1")
                        endif()
                    endforeach()
                    if(mode STREQUAL "body")
                        string(APPEND bodies "namespace ballast_snippet_${count}\n{\n[[maybe_unused]] void snippet()\n{\n"
                                             "${code}}\n} // namespace ballast_snippet_${count}\n")
                    else()
                        string(APPEND bodies "namespace ballast_snippet_${count}\n{\n${code}} // namespace ballast_snippet_${count}\n")
                    endif()
                endif()
                set(mode "")
                set(setup "")
                set(block "")
            else()
                list(APPEND block "${n}|${line}")
            endif()
        elseif(state STREQUAL "fence")
            if(line MATCHES "^```[ \t]*$")
                set(state "text")
            endif()
        elseif(line MATCHES "^[ \t]*<!-- snippet: *([a-z]+)(.*)$")
            set(mode "${CMAKE_MATCH_1}")
            set(rest "${CMAKE_MATCH_2}")
            if(NOT mode MATCHES "^(body|namespace|skip)$")
                message(FATAL_ERROR "${rel}:${n}: unknown snippet mode '${mode}' (body, namespace or skip)")
            endif()
            set(setup "")
            if(NOT rest MATCHES "-->")
                set(state "setup")
            endif()
        elseif(line MATCHES "^```cpp[ \t]*$")
            set(state "block")
            set(block "")
        elseif(line MATCHES "^```")
            # another language: skip to its closing fence; a pending snippet comment does not carry over
            set(state "fence")
            set(mode "")
            set(setup "")
        endif()
    endforeach()
    if(NOT state STREQUAL "text")
        message(FATAL_ERROR "${rel}: unterminated code block or snippet comment")
    endif()
    if(count EQUAL 0)
        set(${out_var} "" PARENT_SCOPE)
        return()
    endif()
    set(tu "// Generated from ${rel} by cmake/BallastDocSnippets.cmake: do not edit.\n${includes}\n${bodies}")
    set(old "")
    if(EXISTS "${tu_path}")
        file(READ "${tu_path}" old)
    endif()
    if(NOT old STREQUAL tu) # rewrite only on change, so an unrelated re-configure rebuilds nothing
        file(WRITE "${tu_path}" "${tu}")
    endif()
    set(${out_var} "${tu_path}" PARENT_SCOPE)
endfunction()

function(ballast_add_doc_snippets target)
    cmake_parse_arguments(ARG "" "" "FILES" ${ARGN})
    set(sources "")
    foreach(md IN LISTS ARG_FILES)
        set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${md}")
        file(RELATIVE_PATH rel "${PROJECT_SOURCE_DIR}" "${md}")
        string(MAKE_C_IDENTIFIER "${rel}" id)
        _ballast_extract_snippets("${md}" "${rel}" "${CMAKE_CURRENT_BINARY_DIR}/doc_snippets/${id}.cpp" tu)
        if(tu)
            list(APPEND sources "${tu}")
        endif()
    endforeach()
    add_library(${target} OBJECT EXCLUDE_FROM_ALL ${sources})
    target_link_libraries(${target} PRIVATE ballast_dev)
    target_compile_options(${target} PRIVATE -O0)
    ballast_set_warnings(${target})
    target_compile_options(${target} PRIVATE -Wno-unused-variable -Wno-unused-but-set-variable
                                             -Wno-unused-local-typedefs -Wno-unused-function)
endfunction()
