#!/usr/bin/env bash
# The baseline: the same hot-warm failover done by hand, no orchestrator. Kill site A's
# postmaster, promote site B, point pgbouncer at B. Prints the fault instant (epoch seconds).
# Environment: A_DATA B_DATA B_HOST B_PORT DB ROUTE_DIR PG_BIN
set -euo pipefail
pid=$(head -1 "$A_DATA/postmaster.pid")
kill -KILL "$pid"
date +%s.%N
runuser -u postgres -- "$PG_BIN/pg_ctl" promote -w -t 60 -D "$B_DATA" >/dev/null
printf '%s = host=%s port=%s dbname=%s\n' "$DB" "$B_HOST" "$B_PORT" "$DB" > "$ROUTE_DIR/databases.ini.tmp"
mv "$ROUTE_DIR/databases.ini.tmp" "$ROUTE_DIR/databases.ini"
kill -HUP "$(cat "$ROUTE_DIR/pgbouncer.pid")"
