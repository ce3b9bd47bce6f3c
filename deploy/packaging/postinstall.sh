#!/bin/sh
# Runs after the files are unpacked (deb postinst, rpm %post): enforces the modes that the services rely
# on even where an older install or an operator changed them, and tells systemd about the units. Does not
# enable or start anything: the services need certificates first (docs/install.md).
set -e
for d in /etc/flowfleet /etc/flowfleet/pki; do
  if [ -d "$d" ]; then chown root:flowfleet "$d"; chmod 0750 "$d"; fi
done
for f in /etc/flowfleet/collector.yaml /etc/flowfleet/sensor.yaml; do
  if [ -f "$f" ]; then chown root:flowfleet "$f"; chmod 0640 "$f"; fi
done
for d in /var/lib/flowfleet /var/lib/flowfleet-sensor; do
  if [ -d "$d" ]; then chown flowfleet:flowfleet "$d"; fi
done
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
