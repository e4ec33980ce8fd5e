#!/bin/sh
# TEST-ONLY stand-in (deploy/bases) for the official nginx image's entrypoint: when the command is nginx, source every
# executable /docker-entrypoint.d/*.envsh and run every executable *.sh, in order, then exec the command.
set -e
if [ "$1" = nginx ] || [ "$1" = nginx-debug ]; then
    for f in $(find /docker-entrypoint.d/ -follow -type f -print | sort -V); do
        # shellcheck disable=SC1090 # the image's own scripts, known at run time only
        case "$f" in
            *.envsh) if [ -x "$f" ]; then echo "$0: sourcing $f"; . "$f"; fi ;;
            *.sh) if [ -x "$f" ]; then echo "$0: running $f"; "$f"; fi ;;
        esac
    done
fi
exec "$@"
