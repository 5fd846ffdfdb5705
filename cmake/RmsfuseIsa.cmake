# Which SIMD paths this build compiles, and the flags of each ISA file.
#
# Only the per-ISA kernel files get ISA flags (as source-file properties);
# the scalar reference, the dispatcher and CPU detection are baseline files
# and refuse (#error) to be compiled with AVX enabled, so a global
# -march=native in CMAKE_C_FLAGS is rejected rather than silently making the
# dispatcher itself unsafe on older CPUs.
#
# Sets:
#   RMSFUSE_ISA_LIST         ISAs compiled in, baseline first ("scalar" always)
#   RMSFUSE_ISA_DEFINITIONS  RMSFUSE_HAVE_<ISA> for src/dispatch.c
# and defines rmsfuse_apply_isa_flags() that sets the per-file flags.
include(CheckCSourceCompiles)

option(RMSFUSE_ENABLE_SSE2 "Build the SSE2 path (x86)" ON)
option(RMSFUSE_ENABLE_AVX2 "Build the AVX2 path (x86)" ON)
option(RMSFUSE_ENABLE_AVX512 "Build the AVX-512 path (x86)" ON)
option(RMSFUSE_ENABLE_NEON "Build the NEON path (AArch64)" ON)

string(TOLOWER "${CMAKE_SYSTEM_PROCESSOR}" _rmsfuse_proc)
set(RMSFUSE_ARCH "other")
if(_rmsfuse_proc MATCHES "^(x86_64|amd64|x64)$")
  set(RMSFUSE_ARCH "x86_64")
elseif(_rmsfuse_proc MATCHES "^(aarch64|arm64)$")
  set(RMSFUSE_ARCH "aarch64")
endif()

set(RMSFUSE_ISA_LIST scalar)
set(RMSFUSE_ISA_DEFINITIONS "")

# rmsfuse_probe_isa(<isa> <flags> <source>): compile <source> with <flags>;
# on success add the ISA and remember its flags.
function(rmsfuse_probe_isa isa flags source)
  set(CMAKE_REQUIRED_FLAGS "${flags}")
  set(CMAKE_REQUIRED_QUIET ON)
  check_c_source_compiles("${source}" RMSFUSE_COMPILER_HAS_${isa})
  if(RMSFUSE_COMPILER_HAS_${isa})
    string(TOUPPER ${isa} _up)
    set(RMSFUSE_ISA_LIST ${RMSFUSE_ISA_LIST} ${isa} PARENT_SCOPE)
    set(RMSFUSE_ISA_DEFINITIONS ${RMSFUSE_ISA_DEFINITIONS} RMSFUSE_HAVE_${_up} PARENT_SCOPE)
    set(RMSFUSE_ISA_FLAGS_${isa} "${flags}" CACHE INTERNAL "")
  else()
    message(STATUS "rmsfuse: the compiler cannot build ${isa} with '${flags}'; that path is left out")
  endif()
endfunction()

if(RMSFUSE_ARCH STREQUAL "x86_64")
  if(RMSFUSE_ENABLE_SSE2)
    rmsfuse_probe_isa(sse2 "-msse2" "#include <emmintrin.h>
      int main(void){__m128 x=_mm_set1_ps(2.f); x=_mm_sqrt_ps(_mm_div_ps(x,x)); return (int)_mm_cvtss_f32(x)-1;}")
  endif()
  if(RMSFUSE_ENABLE_AVX2)
    rmsfuse_probe_isa(avx2 "-mavx2" "#include <immintrin.h>
      int main(void){__m256 x=_mm256_set1_ps(2.f); x=_mm256_sqrt_ps(_mm256_div_ps(x,x)); return (int)_mm256_cvtss_f32(x)-1;}")
  endif()
  if(RMSFUSE_ENABLE_AVX512)
    rmsfuse_probe_isa(avx512 "-mavx512f" "#include <immintrin.h>
      int main(void){__m512 x=_mm512_set1_ps(2.f); x=_mm512_sqrt_ps(_mm512_div_ps(x,x)); return (int)_mm512_cvtss_f32(x)-1;}")
  endif()
elseif(RMSFUSE_ARCH STREQUAL "aarch64")
  if(RMSFUSE_ENABLE_NEON)
    rmsfuse_probe_isa(neon "" "#include <arm_neon.h>
      int main(void){float32x4_t x=vdupq_n_f32(2.f); x=vsqrtq_f32(vdivq_f32(x,x)); return (int)vgetq_lane_f32(x,0)-1;}")
  endif()
endif()

message(STATUS "rmsfuse: ISA paths built: ${RMSFUSE_ISA_LIST}")

# Per-file flags for src/<isa>/*.c.  -fno-lto: an ISA file's code must never
# be inlined into a baseline caller by link-time optimisation.
# -fno-tree-vectorize on every kernel: the scalar reference stays scalar (so
# benchmarks compare real scalar code), and the SIMD files' head/tail loops,
# shorter than a vector, stay small.
function(rmsfuse_apply_isa_flags)
  foreach(isa IN LISTS RMSFUSE_ISA_LIST)
    set(_flags "")
    if(NOT isa STREQUAL "scalar")
      separate_arguments(_flags UNIX_COMMAND "${RMSFUSE_ISA_FLAGS_${isa}}")
    endif()
    if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
      list(APPEND _flags -fno-tree-vectorize -fno-lto)
    endif()
    set_source_files_properties(src/${isa}/rmsprop_${isa}.c PROPERTIES COMPILE_OPTIONS "${_flags}")
  endforeach()
endfunction()
