#!/bin/sh
# Weekly archive care: verify every stored byte, then bring the offsite copy up to date.
# Used by archive-weekly.service (systemd) and org.archivestore.weekly.plist (launchd).
#
# Settings (environment, or the unit's Environment= / the plist's EnvironmentVariables):
#   ARCHIVE_STORE    the store (or store = "..." in ~/.config/archivestore/config.toml)
#   ARCHIVE_REPLICA  replicate destination: a folder, rclone:REMOTE:path, or a copy's name
#                    (unset: no replication)
#   ARCHIVE_MAILTO   mail the report here (needs a working `mail`); unset: log only
#   ARCHIVE_LOG      append the report here as well (default: ~/archive-weekly.log)
#
# Exit status: 0 all good; otherwise the first failing step's status (1 = damage found),
# so systemd marks the unit failed and launchd logs it.
set -u
ARCHIVE=${ARCHIVE:-archive}
LOG=${ARCHIVE_LOG:-$HOME/archive-weekly.log}
REPORT=$(mktemp "${TMPDIR:-/tmp}/archive-weekly.XXXXXX") || exit 3
trap 'rm -f "$REPORT"' EXIT
status=0

step() {  # step LABEL COMMAND...: run, keep its output in the report, remember a failure
    label=$1; shift
    echo "== $label: $*" >>"$REPORT"
    "$@" >>"$REPORT" 2>&1
    rc=$?
    echo "== $label: exit $rc" >>"$REPORT"
    [ "$rc" -ne 0 ] && [ "$status" -eq 0 ] && status=$rc
    return 0
}

echo "archivestore weekly check on $(hostname) at $(date -u '+%Y-%m-%d %H:%M UTC')" >>"$REPORT"
step "fsck" "$ARCHIVE" fsck --read-data --quiet
if [ -n "${ARCHIVE_REPLICA:-}" ]; then
    step "replicate" "$ARCHIVE" replicate --to "$ARCHIVE_REPLICA" --quiet
fi
step "stats" "$ARCHIVE" stats

if [ "$status" -eq 0 ]; then subject="archive OK on $(hostname)"
else subject="archive PROBLEM on $(hostname) (exit $status)"; fi
{ echo "$subject"; cat "$REPORT"; echo; } >>"$LOG"
if [ -n "${ARCHIVE_MAILTO:-}" ] && command -v mail >/dev/null 2>&1; then
    mail -s "$subject" "$ARCHIVE_MAILTO" <"$REPORT"
fi
cat "$REPORT"   # to the journal (systemd) or StandardOutPath (launchd)
exit "$status"
