# Helpers shared by every folder: the warning set, sanitizers, and small wrappers that make
# a library or a test one call each (as in prometheus-cpp's per-folder layout).

add_library(lh_warnings INTERFACE)
target_compile_options(lh_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wformat=2
  # GCC 12 reports false -Wrestrict positives inside libstdc++'s string code at -O3.
  $<$<CXX_COMPILER_ID:GNU>:-Wno-restrict>
  $<$<BOOL:${LH_WERROR}>:-Werror>)

if(LH_SANITIZE)
  add_compile_options(-fsanitize=${LH_SANITIZE} -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${LH_SANITIZE})
endif()

# lh_cc_library(NAME name SRCS ... DEPS ...): a static library target loophost_<name>,
# aliased loophost::<name>, with the repository root on its include path.
function(lh_cc_library)
  cmake_parse_arguments(LH "" "NAME" "SRCS;DEPS" ${ARGN})
  add_library(loophost_${LH_NAME} STATIC ${LH_SRCS})
  add_library(loophost::${LH_NAME} ALIAS loophost_${LH_NAME})
  target_include_directories(loophost_${LH_NAME} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(loophost_${LH_NAME} PUBLIC ${LH_DEPS} PRIVATE lh_warnings)
endfunction()

# lh_cc_test(NAME name SRCS ... DEPS ... [LABELS ...]): a GoogleTest binary registered with CTest.
function(lh_cc_test)
  cmake_parse_arguments(LH "" "NAME" "SRCS;DEPS;LABELS" ${ARGN})
  add_executable(${LH_NAME} ${LH_SRCS})
  target_include_directories(${LH_NAME} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${LH_NAME} PRIVATE ${LH_DEPS} GTest::gmock GTest::gtest_main lh_warnings)
  add_test(NAME ${LH_NAME} COMMAND ${LH_NAME})
  set_tests_properties(${LH_NAME} PROPERTIES TIMEOUT 300)
  if(LH_LABELS)
    set_tests_properties(${LH_NAME} PROPERTIES LABELS "${LH_LABELS}")
  endif()
endfunction()
