#!/bin/sh
# Entry point of the tinbao image (deploy/Dockerfile).
#   (no arguments)  migrate, then serve on 0.0.0.0:8000: a single container needs nothing else
#   migrate         migrate and exit: compose.yaml's one-shot `migrate` service
#   anything else   a tinbao command, e.g. `serve --host 0.0.0.0 --port 8000`, `webhook info`
# "migrate" is `tinbao db upgrade` (idempotent) then `tinbao communes sync` (idempotent: loads the
# 3,321 communes on the first start, applies reference-data updates after an upgrade).
set -eu

migrate() {
    tinbao db upgrade
    tinbao communes sync
}

case "${1:-}" in
    "")
        migrate
        exec tinbao serve --host 0.0.0.0 --port 8000
        ;;
    migrate)
        migrate
        ;;
    *)
        exec tinbao "$@"
        ;;
esac
