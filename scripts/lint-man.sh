#!/bin/sh
# npm run lint:man: every man page through groff with all warnings on (test/docs.test.ts does
# the same for the pages registered in package.json).
set -eu
cd "$(dirname "$0")/.."
command -v groff >/dev/null || { echo "lint:man: groff is not installed (apt-get install groff)" >&2; exit 2; }
status=0
for page in man/*.1 man/*.7; do
  out=$(groff -man -ww -z "$page" 2>&1) || status=1
  if [ -n "$out" ]; then
    printf '%s:\n%s\n' "$page" "$out" >&2
    status=1
  fi
done
exit $status
