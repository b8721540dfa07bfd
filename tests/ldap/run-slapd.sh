#!/bin/sh
# Runs one throwaway slapd in the foreground and stops it when the process that started us goes away.
#
#   run-slapd.sh SLAPD CONF URLS LOG [CLEANUP_DIR]
#
# The test harness keeps our standard input open (a pipe) for as long as it wants the server. When it closes
# the pipe, or exits or dies in any way (even SIGKILL, since the kernel then closes its end), `cat` sees end of
# file and we stop slapd and remove CLEANUP_DIR, unless the harness wrote "keep" first (a stop before a
# restart, which needs the data). This needs neither prctl nor a pid file, and leaves no stray slapd or folder
# after `cargo test`, even when the server is shared by a whole test binary and never dropped.
set -u
slapd=$1 conf=$2 urls=$3 log=$4 cleanup=${5:-}
# -d 0 keeps slapd in the foreground (as our child) without debug output.
"$slapd" -f "$conf" -h "$urls" -d 0 </dev/null >>"$log" 2>&1 &
pid=$!
said=$(cat)
kill -TERM "$pid" 2>/dev/null
i=0
while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 50 ]; do
    sleep 0.1
    i=$((i + 1))
done
kill -KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
if [ -n "$cleanup" ] && [ "$said" != keep ]; then rm -rf "$cleanup"; fi
exit 0
