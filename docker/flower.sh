#!/bin/sh
# Flower starts once a worker answers a ping, and always behind basic auth.
set -e
if [ -z "$FLOWER_BASIC_AUTH" ]; then
  echo "FLOWER_BASIC_AUTH (user:password) is required" >&2
  exit 1
fi
until celery -A leadgen inspect ping --timeout 5 >/dev/null 2>&1; do
  echo "flower: waiting for a worker" >&2
  sleep 5
done
exec celery -A leadgen flower --port=5555 --basic-auth="$FLOWER_BASIC_AUTH"
