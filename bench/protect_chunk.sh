#!/usr/bin/env bash
# Keep the cores for a running training chunk: every few seconds, the autogroup of every Python
# process of another session (tests, installs, benchmarks, helpers) is niced to 19 and the
# process put in SCHED_IDLE. System processes are left alone.
#
#   bash bench/protect_chunk.sh "$(cat runs/campaign/chunk.pid)" &
#
# Why: with the kernel's autogroups (/proc/sys/kernel/sched_autogroup_enabled = 1), the CPU is
# shared fairly between sessions (a terminal, a nohup'ed job, an editor's test runner) whatever
# each process's own nice value. Measured here: two `nice -n 19` jobs in other sessions (a pip
# install and a test suite) took 63% of the two cores, and the chunk fell from 1.1 to 0.3-0.5
# steps/s; with their autogroups at nice 19 they took 8%. Ends when the chunk ends.
set -u
chunk=${1:?usage: protect_chunk.sh CHUNK_PID}
own=$(cat "/proc/$chunk/autogroup" 2>/dev/null | cut -d' ' -f1) || exit 1
while kill -0 "$chunk" 2>/dev/null; do
    for d in /proc/[0-9]*; do
        group=$(cut -d' ' -f1 "$d/autogroup" 2>/dev/null) || continue
        [ "$group" = "$own" ] && continue
        case "$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null)" in
            *python*|*pytest*|*pip*) ;;
            *) continue ;;
        esac
        echo 19 > "$d/autogroup" 2>/dev/null
        chrt -i -p 0 "${d#/proc/}" >/dev/null 2>&1
    done
    sleep 3
done
