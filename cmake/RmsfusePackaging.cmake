# Debian packages of rmsfuse with CPack (included from the top-level CMakeLists.txt).
#
#   cmake --workflow --preset packages   # CMakePresets.json: configure (Release, /usr, the pool),
#                                        # build, cpack -G DEB, in build/packages;
#                                        # scripts/check_packages.sh runs it and checks the packages
#
# One package per install component:
#   runtime  librmsfuse0       /usr/lib/<multiarch>/librmsfuse.so.0* and librmsfuse_pool.so.0*
#   dev      librmsfuse-dev    headers, librmsfuse.a, the .so links, CMake package, pkg-config files
#   python   python3-rmsfuse   /usr/lib/python3/dist-packages/rmsfuse and /usr/bin/rmsfuse
# Configure with CMAKE_INSTALL_PREFIX=/usr: GNUInstallDirs then puts the libraries under
# lib/<multiarch> (Debian).  The packaging-only files (the python component, the copyright
# and changelog files under share/doc) are EXCLUDE_FROM_ALL: a plain `cmake --install` installs
# what it did before (headers, libraries, CMake package, pkg-config), nothing more.

set(RMSFUSE_DEB_MAINTAINER "rmsfuse maintainers <rmsfuse@example.org>" CACHE STRING
    "Maintainer field of the Debian packages")
set(RMSFUSE_HOMEPAGE "https://example.org/rmsfuse" CACHE STRING "Homepage field of the Debian packages")
set(RMSFUSE_DEB_RELEASE "1" CACHE STRING "Debian revision of the packages (version ${PROJECT_VERSION}-<this>)")
string(TIMESTAMP _rmsfuse_year "%Y" UTC) # honours SOURCE_DATE_EPOCH
set(RMSFUSE_DEB_COPYRIGHT "${_rmsfuse_year} the rmsfuse authors" CACHE STRING "Copyright holder written to the packages' copyright files")
set(RMSFUSE_DEB_LICENSE "no license file in the source tree: all rights reserved by the copyright holders"
    CACHE STRING "License statement written to the packages' copyright files")
set(RMSFUSE_PYTHON_INSTALL_DIR "lib/python3/dist-packages" CACHE STRING
    "Where the python component installs the rmsfuse package (relative to the prefix; Debian: lib/python3/dist-packages)")

set(_rmsfuse_deb_version "${PROJECT_VERSION}-${RMSFUSE_DEB_RELEASE}")
set(_rmsfuse_runtime_pkg "librmsfuse${PROJECT_VERSION_MAJOR}") # the SONAME's: librmsfuse.so.0
# Each component's package name, once: _rmsfuse_pkg_<component>.
set(_rmsfuse_pkg_runtime "${_rmsfuse_runtime_pkg}")
set(_rmsfuse_pkg_dev librmsfuse-dev)
set(_rmsfuse_pkg_python python3-rmsfuse)
set(_rmsfuse_pkgdir "${PROJECT_BINARY_DIR}/packaging")
file(MAKE_DIRECTORY "${_rmsfuse_pkgdir}")

# ---- the python component: the package, and the rmsfuse command ----------
install(DIRECTORY "${PROJECT_SOURCE_DIR}/python/rmsfuse" DESTINATION "${RMSFUSE_PYTHON_INSTALL_DIR}"
  COMPONENT python EXCLUDE_FROM_ALL
  FILES_MATCHING PATTERN "*.py" PATTERN "__pycache__" EXCLUDE)
file(CONFIGURE OUTPUT "${_rmsfuse_pkgdir}/rmsfuse" @ONLY CONTENT [[#!/bin/sh
# rmsfuse info | selftest | bench: see `rmsfuse --help` (python3-rmsfuse)
exec /usr/bin/python3 -m rmsfuse "$@"
]])
install(PROGRAMS "${_rmsfuse_pkgdir}/rmsfuse" DESTINATION "${CMAKE_INSTALL_BINDIR}" COMPONENT python EXCLUDE_FROM_ALL)
string(TIMESTAMP _rmsfuse_man_date "%Y-%m-%d" UTC) # honours SOURCE_DATE_EPOCH
file(CONFIGURE OUTPUT "${_rmsfuse_pkgdir}/rmsfuse.1" @ONLY CONTENT [[.TH RMSFUSE 1 "@_rmsfuse_man_date@" "rmsfuse @PROJECT_VERSION@" "User Commands"
.SH NAME
rmsfuse \- information, self test and benchmark of the rmsfuse optimizer library
.SH SYNOPSIS
.B rmsfuse info
.RB [ \-\-json ]
.br
.B rmsfuse selftest
.RB [ \-\-quick ]
.br
.B rmsfuse bench
.RB [ \-\-quick ]
.SH DESCRIPTION
.B rmsfuse
runs
.B python3 \-m rmsfuse
(the Python package rmsfuse).
.B info
shows the library loaded, the instruction set in use and why, the CPU, its cores and caches.
.B selftest
checks every usable instruction set against the scalar path, bit for bit.
.B bench
compares the PyTorch drop-in optimizers with torch.optim (needs python3-torch).
.B rmsfuse \-\-help
lists every option.
.SH EXIT STATUS
0 on success, 1 when the self test finds a difference, 2 on a usage error or a missing dependency.
.SH SEE ALSO
.BR python3 (1)
]])

# ---- /usr/share/doc/<package>: copyright and changelog, for each package --
string(TIMESTAMP _rmsfuse_deb_date "%a, %d %b %Y %H:%M:%S +0000" UTC)
file(CONFIGURE OUTPUT "${_rmsfuse_pkgdir}/copyright" @ONLY CONTENT [[rmsfuse @PROJECT_VERSION@: fused SIMD optimizer updates (RMSProp, AdaGrad, SGD, Adam/AdamW).
Homepage: @RMSFUSE_HOMEPAGE@

Copyright (C) @RMSFUSE_DEB_COPYRIGHT@
License: @RMSFUSE_DEB_LICENSE@
]])
file(CONFIGURE OUTPUT "${_rmsfuse_pkgdir}/changelog.Debian" @ONLY CONTENT [[rmsfuse (@_rmsfuse_deb_version@) unstable; urgency=medium

  * rmsfuse @PROJECT_VERSION@, packaged with CPack (cmake/RmsfusePackaging.cmake).

 -- @RMSFUSE_DEB_MAINTAINER@  @_rmsfuse_deb_date@
]])
find_program(RMSFUSE_GZIP gzip)
if(RMSFUSE_GZIP)
  execute_process(COMMAND "${RMSFUSE_GZIP}" -9nc INPUT_FILE "${_rmsfuse_pkgdir}/changelog.Debian"
                  OUTPUT_FILE "${_rmsfuse_pkgdir}/changelog.Debian.gz")
  execute_process(COMMAND "${RMSFUSE_GZIP}" -9nc INPUT_FILE "${_rmsfuse_pkgdir}/rmsfuse.1"
                  OUTPUT_FILE "${_rmsfuse_pkgdir}/rmsfuse.1.gz")
  install(FILES "${_rmsfuse_pkgdir}/rmsfuse.1.gz" DESTINATION "${CMAKE_INSTALL_MANDIR}/man1"
    COMPONENT python EXCLUDE_FROM_ALL)
endif()
foreach(_c IN ITEMS runtime dev python)
  set(_p "${_rmsfuse_pkg_${_c}}")
  install(FILES "${_rmsfuse_pkgdir}/copyright" DESTINATION "${CMAKE_INSTALL_DATAROOTDIR}/doc/${_p}"
    COMPONENT ${_c} EXCLUDE_FROM_ALL)
  if(RMSFUSE_GZIP)
    install(FILES "${_rmsfuse_pkgdir}/changelog.Debian.gz" DESTINATION "${CMAKE_INSTALL_DATAROOTDIR}/doc/${_p}"
      COMPONENT ${_c} EXCLUDE_FROM_ALL)
  endif()
endforeach()

# ---- maintainer scripts of python3-rmsfuse: byte-compile, and clean up ----
# (what dh_python3 generates: the __pycache__ folders belong to no package otherwise)
file(MAKE_DIRECTORY "${_rmsfuse_pkgdir}/python")
file(CONFIGURE OUTPUT "${_rmsfuse_pkgdir}/python/postinst" @ONLY CONTENT [[#!/bin/sh
set -e
if command -v py3compile >/dev/null 2>&1; then
	py3compile -p python3-rmsfuse
fi
]])
file(CONFIGURE OUTPUT "${_rmsfuse_pkgdir}/python/prerm" @ONLY CONTENT [[#!/bin/sh
set -e
if command -v py3clean >/dev/null 2>&1; then
	py3clean -p python3-rmsfuse
else
	find /usr/lib/python3/dist-packages/rmsfuse -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
fi
]])
file(CHMOD "${_rmsfuse_pkgdir}/python/postinst" "${_rmsfuse_pkgdir}/python/prerm"
  PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

# ---- librmsfuse0: the ldconfig trigger; lintian overrides -------------------
file(MAKE_DIRECTORY "${_rmsfuse_pkgdir}/runtime")
file(WRITE "${_rmsfuse_pkgdir}/runtime/triggers" "activate-noawait ldconfig\n")
# Only what cannot be helped (scripts/check_packages.sh runs lintian and fails on errors):
#  - CPack 3.25 writes a postinst and postrm calling ldconfig for every library package under
#    /usr/lib unless the package brings its own; the trigger above is the real mechanism,
#    the calls are redundant and harmless;
#  - the packages are built from the source tree, not uploaded to Debian: no ITP bug to close.
set(_rmsfuse_overrides_runtime
  "# CPack generates ldconfig calls for library packages; the ldconfig trigger is shipped too.
${_rmsfuse_runtime_pkg}: maintscript-calls-ldconfig [postinst]
${_rmsfuse_runtime_pkg}: maintscript-calls-ldconfig [postrm]
")
foreach(_c IN ITEMS runtime dev python)
  set(_p "${_rmsfuse_pkg_${_c}}")
  set(_o "# Built from the rmsfuse source tree with CPack, not uploaded to Debian: no ITP bug to close.
${_p}: initial-upload-closes-no-bugs
")
  if(_c STREQUAL "runtime")
    string(APPEND _o "${_rmsfuse_overrides_runtime}")
  endif()
  file(WRITE "${_rmsfuse_pkgdir}/${_c}/${_p}" "${_o}")
  install(FILES "${_rmsfuse_pkgdir}/${_c}/${_p}" DESTINATION "${CMAKE_INSTALL_DATAROOTDIR}/lintian/overrides"
    COMPONENT ${_c} EXCLUDE_FROM_ALL)
endforeach()

# ---- CPack -----------------------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME rmsfuse)
set(CPACK_PACKAGE_VENDOR "${RMSFUSE_DEB_COPYRIGHT}")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "${RMSFUSE_DEB_MAINTAINER}")
# CPack prepends a summary that is not its default to every package's own description: the
# packages below have their own synopsis lines, so the summary is left at CPack's default.
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${CMAKE_PROJECT_NAME} built using CMake")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL runtime dev python)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE "${RMSFUSE_DEB_RELEASE}")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${RMSFUSE_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "${RMSFUSE_HOMEPAGE}")
set(CPACK_DEBIAN_PACKAGE_SOURCE rmsfuse)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON) # DEBIAN/shlibs: librmsfuse 0 librmsfuse0 (>= version)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)

set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME "${_rmsfuse_runtime_pkg}")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA "${_rmsfuse_pkgdir}/runtime/triggers")
set(CPACK_DEBIAN_RUNTIME_DESCRIPTION "fused SIMD optimizer updates (RMSProp, AdaGrad, SGD, Adam) - libraries
rmsfuse applies an optimizer step (RMSProp, AdaGrad, SGD with momentum,
Adam and AdamW) to float32 arrays in one fused pass, with SIMD kernels for
SSE2, AVX2, AVX-512, NEON and SVE chosen at run time.

This package contains the shared libraries librmsfuse.so.0 and the thread
pool librmsfuse_pool.so.0 (pthreads, hwloc).")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME "${_rmsfuse_pkg_dev}")
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "${_rmsfuse_runtime_pkg} (= ${_rmsfuse_deb_version}), libhwloc-dev")
set(CPACK_DEBIAN_DEV_PACKAGE_SUGGESTS "pkg-config")
set(CPACK_DEBIAN_DEV_DESCRIPTION "fused SIMD optimizer updates (RMSProp, AdaGrad, SGD, Adam) - development files
rmsfuse applies an optimizer step (RMSProp, AdaGrad, SGD with momentum,
Adam and AdamW) to float32 arrays in one fused pass, with SIMD kernels for
SSE2, AVX2, AVX-512, NEON and SVE chosen at run time.

This package contains the headers, the static library, the CMake package
(find_package(rmsfuse)) and the pkg-config files (rmsfuse, rmsfuse_pool).")

set(CPACK_DEBIAN_PYTHON_PACKAGE_NAME "${_rmsfuse_pkg_python}")
set(CPACK_DEBIAN_PYTHON_PACKAGE_SECTION python)
set(CPACK_DEBIAN_PYTHON_PACKAGE_ARCHITECTURE all)
set(CPACK_DEBIAN_PYTHON_PACKAGE_DEPENDS "python3, python3-numpy, ${_rmsfuse_runtime_pkg} (= ${_rmsfuse_deb_version})")
set(CPACK_DEBIAN_PYTHON_PACKAGE_SUGGESTS "python3-torch")
set(CPACK_DEBIAN_PYTHON_PACKAGE_CONTROL_EXTRA "${_rmsfuse_pkgdir}/python/postinst;${_rmsfuse_pkgdir}/python/prerm")
set(CPACK_DEBIAN_PYTHON_DESCRIPTION "fused SIMD optimizer updates (RMSProp, AdaGrad, SGD, Adam) - Python 3
rmsfuse applies an optimizer step (RMSProp, AdaGrad, SGD with momentum,
Adam and AdamW) to float32 arrays in one fused pass, with SIMD kernels for
SSE2, AVX2, AVX-512, NEON and SVE chosen at run time.

This package contains the Python 3 binding for NumPy arrays (ctypes, over
the system's librmsfuse.so.0), drop-in torch.optim optimizers for CPU
float32 tensors (rmsfuse.torch, with python3-torch) and the rmsfuse command
(info, selftest, bench).")

include(CPack)
