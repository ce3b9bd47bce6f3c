#!/bin/sh
# Runs after the files are removed (deb postrm, rpm %postun). On purge (deb) removes the state and
# configuration directories if they are empty: collected data and certificates an operator added are
# never deleted by a package manager. The flowfleet user and group stay (see preinstall.sh).
set -e
if [ "$1" = purge ]; then
  for d in /var/lib/flowfleet-sensor /var/lib/flowfleet /etc/flowfleet/pki /etc/flowfleet; do
    rmdir "$d" 2>/dev/null || true
  done
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
