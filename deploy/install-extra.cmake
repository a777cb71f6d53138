# install-extra.cmake - run by `cmake --install`: installs coapgw.conf when
# there is none yet (a reinstall keeps the operator's) and the systemd unit
# with the installed paths. CMAKE_INSTALL_PREFIX is the prefix of this
# install (--prefix wins); COAPGW_* come from the install(CODE) before it.
foreach(v BINDIR SYSCONFDIR UNITDIR)
  if(IS_ABSOLUTE "${COAPGW_${v}}")
    set(${v} "${COAPGW_${v}}")
  else()
    set(${v} "${CMAKE_INSTALL_PREFIX}/${COAPGW_${v}}")
  endif()
endforeach()
set(confdir "$ENV{DESTDIR}${SYSCONFDIR}/coapgw")
if(NOT EXISTS "${confdir}/coapgw.conf")
  file(INSTALL "${COAPGW_SRC}/deploy/coapgw.conf" DESTINATION "${confdir}")
else()
  message(STATUS "Kept: ${confdir}/coapgw.conf")
endif()
file(READ "${COAPGW_SRC}/deploy/coapgw.service" unit)
string(REPLACE "/usr/local/bin/coapgw" "${BINDIR}/coapgw" unit "${unit}")
string(REPLACE "/usr/local/etc/coapgw/" "${SYSCONFDIR}/coapgw/" unit "${unit}")
file(MAKE_DIRECTORY "$ENV{DESTDIR}${UNITDIR}")
file(WRITE "$ENV{DESTDIR}${UNITDIR}/coapgw.service" "${unit}")
message(STATUS "Installing: $ENV{DESTDIR}${UNITDIR}/coapgw.service")
# `coapgw-client` is `coapgw client` under its own name (main.c looks at argv[0]).
file(CREATE_LINK coapgw "$ENV{DESTDIR}${BINDIR}/coapgw-client" SYMBOLIC)
message(STATUS "Installing: $ENV{DESTDIR}${BINDIR}/coapgw-client -> coapgw")
