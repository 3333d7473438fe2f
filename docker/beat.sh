#!/bin/sh
# celery beat refuses to start over a pid file left by a killed container: remove it first.
set -e
rm -f /run/leadgen/celerybeat.pid
exec celery -A leadgen beat --loglevel=INFO \
  --pidfile=/run/leadgen/celerybeat.pid \
  --schedule=/app/var/celerybeat-schedule
