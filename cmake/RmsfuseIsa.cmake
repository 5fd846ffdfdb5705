# Which SIMD paths this build compiles, and how.
#
# Every ISA of the registry (src/core/dispatch.c) has a probe below; each
# becomes an object library compiling src/isa/kernels.c with
# -DRMSFUSE_ISA=<isa>.  Where the probe succeeds, it also gets
# -DRMSFUSE_ISA_OPS="ops_<isa>.h" and the ISA's flags, and the file
# instantiates every rule for that ISA; elsewhere (another architecture, a
# compiler without the ISA) it defines an empty kernel table, which the
# dispatcher reads as "not usable".  Only these objects get ISA flags: the
# API, validation, dispatch and CPU detection are baseline files and refuse
# (#error) to be compiled with AVX enabled, so a global -march=native in
# CMAKE_C_FLAGS is rejected rather than silently making the dispatcher
# itself unsafe on older CPUs.
#
# Sets:
#   RMSFUSE_ISA_LIST   ISAs compiled in, baseline first ("scalar" always)
#   RMSFUSE_ISA_ALL    every ISA of the registry (compiled in or not)
# and defines rmsfuse_add_isa_objects() that creates the object libraries.
include(CheckCSourceCompiles)

option(RMSFUSE_ENABLE_SSE2 "Build the SSE2 path (x86)" ON)
option(RMSFUSE_ENABLE_AVX2 "Build the AVX2 path (x86)" ON)
option(RMSFUSE_ENABLE_AVX512 "Build the AVX-512 path (x86)" ON)
option(RMSFUSE_ENABLE_NEON "Build the NEON path (AArch64)" ON)
option(RMSFUSE_ENABLE_SVE "Build the SVE path (AArch64)" ON)

string(TOLOWER "${CMAKE_SYSTEM_PROCESSOR}" _rmsfuse_proc)
set(RMSFUSE_ARCH "other")
if(_rmsfuse_proc MATCHES "^(x86_64|amd64|x64)$")
  set(RMSFUSE_ARCH "x86_64")
elseif(_rmsfuse_proc MATCHES "^(aarch64|arm64)$")
  set(RMSFUSE_ARCH "aarch64")
endif()

set(RMSFUSE_ISA_LIST scalar)
set(RMSFUSE_ISA_ALL scalar)
set(RMSFUSE_ISA_FLAGS_scalar "" CACHE INTERNAL "")

# rmsfuse_probe_isa(<isa> <arch> <option> <flags> <source>): on <arch>, with
# <option> on, compile <source> with <flags>; on success the ISA is built.
function(rmsfuse_probe_isa isa arch option flags source)
  set(RMSFUSE_ISA_ALL ${RMSFUSE_ISA_ALL} ${isa} PARENT_SCOPE)
  if(NOT RMSFUSE_ARCH STREQUAL arch OR NOT ${option})
    return()
  endif()
  set(CMAKE_REQUIRED_FLAGS "${flags}")
  set(CMAKE_REQUIRED_QUIET ON)
  check_c_source_compiles("${source}" RMSFUSE_COMPILER_HAS_${isa})
  if(RMSFUSE_COMPILER_HAS_${isa})
    set(RMSFUSE_ISA_LIST ${RMSFUSE_ISA_LIST} ${isa} PARENT_SCOPE)
    set(RMSFUSE_ISA_FLAGS_${isa} "${flags}" CACHE INTERNAL "")
  else()
    message(STATUS "rmsfuse: the compiler cannot build ${isa} with '${flags}'; that path is left out")
  endif()
endfunction()

rmsfuse_probe_isa(sse2 x86_64 RMSFUSE_ENABLE_SSE2 "-msse2" "#include <emmintrin.h>
  int main(void){__m128 x=_mm_set1_ps(2.f); x=_mm_sqrt_ps(_mm_div_ps(x,x)); return (int)_mm_cvtss_f32(x)-1;}")
rmsfuse_probe_isa(avx2 x86_64 RMSFUSE_ENABLE_AVX2 "-mavx2" "#include <immintrin.h>
  int main(void){__m256 x=_mm256_set1_ps(2.f); x=_mm256_sqrt_ps(_mm256_div_ps(x,x)); return (int)_mm256_cvtss_f32(x)-1;}")
rmsfuse_probe_isa(avx512 x86_64 RMSFUSE_ENABLE_AVX512 "-mavx512f" "#include <immintrin.h>
  int main(void){__m512 x=_mm512_set1_ps(2.f); x=_mm512_sqrt_ps(_mm512_div_ps(x,x)); return (int)_mm512_cvtss_f32(x)-1;}")
rmsfuse_probe_isa(neon aarch64 RMSFUSE_ENABLE_NEON "" "#include <arm_neon.h>
  int main(void){float32x4_t x=vdupq_n_f32(2.f); x=vsqrtq_f32(vdivq_f32(x,x)); return (int)vgetq_lane_f32(x,0)-1;}")

# SVE: vector-length agnostic (svcntw() floats per vector, known at run time).
rmsfuse_probe_isa(sve aarch64 RMSFUSE_ENABLE_SVE "-march=armv8-a+sve" "#include <arm_sve.h>
  int main(void){svbool_t pg=svwhilelt_b32_u64(0,svcntw()); svfloat32_t x=svdup_n_f32(2.f);
  x=svsqrt_f32_x(pg,svdiv_f32_x(pg,x,x)); return (int)svlasta_f32(svpfalse_b(),x)-1;}")

message(STATUS "rmsfuse: ISA paths built: ${RMSFUSE_ISA_LIST}")

# rmsfuse_add_isa_objects(<out var> <options...>): object libraries per
# ISA of the registry, compiled with <options>: rmsfuse_isa_<isa> (the
# float32 kernels, kernels.c's part 1), rmsfuse_isa_<isa>_storage (the
# storage types, part 2) and, for an ISA that is built, one
# rmsfuse_isa_<isa>_tx_<rule> per rule (part 3: that rule's fused storage
# loops, src/isa/storage_fused.h; empty on ISAs without them); the list of
# them goes to <out var>.  Parts because the largest ISA objects dominate
# every build: as one file each, a 2-core build waited on the AVX-512
# object alone (Zen 3 VM, RelWithDebInfo: sse2 45 s, avx2 71 s, avx512
# 90 s, the library at 136 s); later, with every rule's fused loops, on the
# AVX2 storage object alone (202 s at -O2 -g, where the four rules' parts
# take 16 to 64 s each: the time of GCC 12's garbage collector grows faster than
# linearly with the size of a file).
# -fno-lto: an ISA's code must never be inlined into a baseline caller by
# link-time optimisation.
# -fno-tree-vectorize: the scalar reference stays scalar (so benchmarks
# compare real scalar code), and the SIMD heads and tails stay small.
# RMSFUSE_ISA_EXTRA_FLAGS: more options for these objects only (the
# sanitize preset: -fno-sanitize=pointer-overflow, see CMakePresets.json).
set(RMSFUSE_ISA_EXTRA_FLAGS "" CACHE STRING "Extra compiler options for the per-ISA kernel objects only")
# The rules, in the order of the registry (src/rules/registry.h), read from it.
set(_rmsfuse_registry ${PROJECT_SOURCE_DIR}/src/rules/registry.h)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_rmsfuse_registry})
file(STRINGS ${_rmsfuse_registry} _rmsfuse_rules_line REGEX "^#define RMSFUSE_RULES\\(X\\) ")
string(REGEX MATCHALL "X\\([a-z0-9_]+\\)" _rmsfuse_rules "${_rmsfuse_rules_line}")
string(REGEX REPLACE "X\\(([a-z0-9_]+)\\)" "\\1" RMSFUSE_RULE_NAMES "${_rmsfuse_rules}")
if(NOT RMSFUSE_RULE_NAMES)
  message(FATAL_ERROR "rmsfuse: no rule list (#define RMSFUSE_RULES(X) ...) in ${_rmsfuse_registry}")
endif()

function(rmsfuse_add_isa_objects out)
  set(targets "")
  set(_isas ${RMSFUSE_ISA_ALL})
  list(REVERSE _isas) # the widest ISAs, the slowest to compile, first
  # Every ISA's part 1 first, then the rules' parts and part 2, as make
  # starts them in this order: part 1 of every vector ISA takes long (SSE2's
  # 38 s at -O2 -g, 63 s with ASan on the Zen 3 VM), and started last it
  # kept one core busy alone at the end.
  set(_jobs "")
  foreach(isa IN LISTS _isas)
    list(APPEND _jobs "${isa}:1")
  endforeach()
  foreach(isa IN LISTS _isas)
    if(isa IN_LIST RMSFUSE_ISA_LIST)
      foreach(rule IN LISTS RMSFUSE_RULE_NAMES)
        list(APPEND _jobs "${isa}:${rule}")
      endforeach()
    endif()
    list(APPEND _jobs "${isa}:2")
  endforeach()
  foreach(job IN LISTS _jobs)
    string(REPLACE ":" ";" job "${job}")
    list(GET job 0 isa)
    list(GET job 1 part)
    set(t rmsfuse_isa_${isa})
    set(_defs RMSFUSE_KPART=${part})
    if(part STREQUAL "2")
      set(t rmsfuse_isa_${isa}_storage)
    elseif(NOT part STREQUAL "1")
      set(t rmsfuse_isa_${isa}_tx_${part})
      set(_defs RMSFUSE_KPART=3 RMSFUSE_TX_RULE=${part})
    endif()
    add_library(${t} OBJECT ${PROJECT_SOURCE_DIR}/src/isa/kernels.c)
    target_compile_definitions(${t} PRIVATE RMSFUSE_BUILDING RMSFUSE_ISA=${isa} ${_defs})
    target_include_directories(${t} PRIVATE ${PROJECT_SOURCE_DIR}/include)
    target_compile_options(${t} PRIVATE ${ARGN})
    if(isa IN_LIST RMSFUSE_ISA_LIST)
      target_compile_definitions(${t} PRIVATE RMSFUSE_ISA_OPS="ops_${isa}.h")
      separate_arguments(_flags UNIX_COMMAND "${RMSFUSE_ISA_FLAGS_${isa}}")
      target_compile_options(${t} PRIVATE ${_flags})
    endif()
    if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
      target_compile_options(${t} PRIVATE -fno-tree-vectorize -fno-lto)
    endif()
    # With -g, GCC's tracking of variable locations through the kernels'
    # large inlined loops took about a third of their compile time (AVX-512
    # object on Zen 5: 41 s -> 26 s at -O2 -g; 106 s -> 76 s with ASan and
    # UBSan), as much as -g0 saves.  Line tables and frames stay, so
    # debuggers, valgrind and sanitizers still name functions and lines;
    # only variables inside optimised kernels are more often "optimized out".
    if(CMAKE_C_COMPILER_ID STREQUAL "GNU")
      target_compile_options(${t} PRIVATE -fno-var-tracking-assignments)
    endif()
    if(RMSFUSE_ISA_EXTRA_FLAGS)
      separate_arguments(_extra UNIX_COMMAND "${RMSFUSE_ISA_EXTRA_FLAGS}")
      target_compile_options(${t} PRIVATE ${_extra})
    endif()
    set_target_properties(${t} PROPERTIES
      POSITION_INDEPENDENT_CODE ON
      C_VISIBILITY_PRESET hidden
      INTERPROCEDURAL_OPTIMIZATION OFF)
    list(APPEND targets ${t})
  endforeach()
  set(${out} ${targets} PARENT_SCOPE)
endfunction()
