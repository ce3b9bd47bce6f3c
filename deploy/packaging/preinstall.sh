#!/bin/sh
# Runs before the files are unpacked (deb preinst, rpm %pre), so that files owned by group flowfleet get
# that group: creates the flowfleet system group and user (no login, no home) unless they exist. Shared by
# the flowfleet-collector, flowfleet-sensor and flowctl packages. They are not removed on purge (Debian
# policy: files owned by the user may remain anywhere).
set -e
if ! getent group flowfleet >/dev/null; then
  groupadd --system flowfleet
fi
if ! getent passwd flowfleet >/dev/null; then
  useradd --system --gid flowfleet --home-dir /var/lib/flowfleet --no-create-home \
    --shell /usr/sbin/nologin --comment "FlowFleet" flowfleet
fi
exit 0
