# Install rules and the Debian package (CPack). Included at the end of CMakeLists.txt.
#
#   cmake --build build && (cd build && cpack -G DEB)   ->  build/weir_<version>_amd64.deb
#
# The package installs what deploy/systemd/weir.service expects:
#   /usr/bin/weir                          the binary (stripped)
#   /etc/weir/weir.yaml                    a working default config (a conffile: kept on upgrade
#                                          and on `apt-get remove`, dpkg asks before replacing an
#                                          edited one; mode 0640 root:weir, set by postinst)
#   /lib/systemd/system/weir.service       the unit
#   /usr/share/doc/weir/                   copyright, README, the docs
# and maintainer scripts (deploy/debian/): postinst creates the `weir` system user and, where
# systemd runs, enables and starts the unit; prerm/postrm stop, disable and forget it. Runtime
# dependencies are computed by dpkg-shlibdeps (packages dpkg-dev and file at build time).
# Checked end to end in a bare Debian 12 root by deploy/debian/test-deb.sh.

set(WEIR_PACKAGE_MAINTAINER "Weir maintainers <weir@example.org>"
    CACHE STRING "Maintainer field of the .deb")
# The repository has no LICENSE file yet: set this (an SPDX identifier) once it has one; a
# LICENSE file at the top of the tree, when present, is copied into the copyright file.
set(WEIR_PACKAGE_LICENSE "UNSPECIFIED" CACHE STRING "License (SPDX identifier) in the .deb's copyright file")

set(WEIR_DEBIAN_DIR ${CMAKE_CURRENT_SOURCE_DIR}/deploy/debian)

# --- install rules ---------------------------------------------------------------------------
# The binary under the prefix (/usr in the package), the rest at the absolute places the unit
# and Debian use: no prefix could put a file in both /usr/bin and /etc.
install(TARGETS weir RUNTIME DESTINATION bin)
install(FILES ${WEIR_DEBIAN_DIR}/weir.yaml DESTINATION /etc/weir PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ)
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/deploy/systemd/weir.service DESTINATION /lib/systemd/system)

set(WEIR_COPYRIGHT ${CMAKE_CURRENT_BINARY_DIR}/packaging/copyright)
set(_weir_copyright_text
  "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
  "Upstream-Name: weir\n\n"
  "Files: *\n"
  "Copyright: the Weir authors\n"
  "License: ${WEIR_PACKAGE_LICENSE}\n")
if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/LICENSE)
  file(READ ${CMAKE_CURRENT_SOURCE_DIR}/LICENSE _weir_license_text)
  # DEP-5: the license text as continuation lines, blank lines as " ."
  string(REGEX REPLACE "\n\n" "\n.\n" _weir_license_text "${_weir_license_text}")
  string(REGEX REPLACE "\n" "\n " _weir_license_text "${_weir_license_text}")
  list(APPEND _weir_copyright_text " ${_weir_license_text}\n")
  set(CPACK_RESOURCE_FILE_LICENSE ${CMAKE_CURRENT_SOURCE_DIR}/LICENSE)
endif()
string(CONCAT _weir_copyright_text ${_weir_copyright_text})
file(CONFIGURE OUTPUT ${WEIR_COPYRIGHT} CONTENT "${_weir_copyright_text}" @ONLY)
install(FILES ${WEIR_COPYRIGHT} ${CMAKE_CURRENT_SOURCE_DIR}/README.md DESTINATION share/doc/weir)
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/examples/weir.yaml DESTINATION share/doc/weir/examples)
file(GLOB _weir_docs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/docs/*.md)
install(FILES ${_weir_docs} DESTINATION share/doc/weir/docs)

# --- the package -----------------------------------------------------------------------------
# dpkg marks files as conffiles only when told to (debhelper does it for everything in /etc).
set(WEIR_CONFFILES ${CMAKE_CURRENT_BINARY_DIR}/packaging/conffiles)
file(CONFIGURE OUTPUT ${WEIR_CONFFILES} CONTENT "/etc/weir/weir.yaml\n")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME weir)
set(CPACK_PACKAGE_VENDOR "Weir")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${WEIR_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "frame-aware WebSocket gateway")
# The long description, in lines under 80 columns (dpkg shows it as written).
set(CPACK_PACKAGE_DESCRIPTION
  "Weir terminates client WebSocket connections (ws:// and wss://) and relays\n"
  "them, frame by frame, to upstream WebSocket servers chosen by route (host,\n"
  "path, headers): per-route limits, timeouts and keepalives, message filters,\n"
  "TLS with SNI and mTLS, reload on SIGHUP without dropping sessions, drain on\n"
  "SIGTERM, Prometheus metrics and an admin API. Runs under systemd as the\n"
  "weir user (Type=notify).")
string(CONCAT CPACK_PACKAGE_DESCRIPTION ${CPACK_PACKAGE_DESCRIPTION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR})

set(CPACK_DEBIAN_PACKAGE_NAME weir)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)   # weir_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${WEIR_PACKAGE_MAINTAINER}")
# Runtime libraries (libssl3, libyaml-cpp0.7, libfmt9, libsystemd0, libstdc++6, ...) from the
# binary's NEEDED entries; passwd for useradd in postinst (not Essential).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "passwd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${WEIR_CONFFILES} ${WEIR_DEBIAN_DIR}/postinst ${WEIR_DEBIAN_DIR}/prerm ${WEIR_DEBIAN_DIR}/postrm)
# 0755 for the scripts, 0644 for conffiles, whatever the checkout's modes.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
