"""Starts the processes bench/harness.py times, from a process small enough not to show in their peak RSS.

`python -I -S bench/spawn.py ERR_FD`, one per harness (harness.run_process starts it). On Linux the
ru_maxrss that wait4() reports for a child also counts the memory image the child was exec'd from: exec
folds the old image's peak into the process's maxrss (fs/exec.c, exec_mmap). Spawned straight from the
harness (tens of MiB of Python, more once the N=1000 sets are loaded), every tool showed the harness's
size. Spawned from this interpreter, which imports only built-in modules, the floor is its own peak RSS,
about 9 MiB: below every process measured (psql, the smallest, is about 10 MiB). Each answer carries
that floor; a process whose own peak is lower shows the floor instead.

posix_spawn (vfork + exec in C, as subprocess.Popen did in the harness) keeps the timed span and its cost
as before: fork to reaped. A forked Python child would lower the floor to about 5 MiB but add about
0.5 ms to every run.

Protocol, marshal over stdin/stdout. Request (args, env, cwd); answer (exit code, ms, maxrss KiB, floor
KiB). Children get /dev/null as stdin and stdout and ERR_FD as stderr (set on this process's own fds 0-2,
so nothing needs doing between fork and exec); args[0] is looked up on env's PATH, as Popen does; a
command that cannot be exec'd answers 127 with the reason on stderr.
"""

import marshal
import os
import sys
import time


def peak_rss_kb() -> int:
    with open("/proc/self/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmHWM:"):
                return int(line.split()[1])
    return 0


def executable(name: str, env: dict[str, str]) -> str:
    if os.sep in name:
        return name
    for d in os.get_exec_path(env):
        path = os.path.join(d, name)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    return name


def main() -> None:
    requests = os.fdopen(os.dup(0), "rb")  # os.dup: not inherited by the children
    answers = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    err = int(sys.argv[1])
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(err, 2)
    os.close(null)
    os.close(err)
    sys.stdin = sys.stdout = None
    while True:
        try:
            args, env, cwd = marshal.load(requests)
        except EOFError:
            return
        if cwd:
            os.chdir(cwd)
        path = executable(args[0], env)
        floor = peak_rss_kb()
        started = time.perf_counter()
        try:
            pid = os.posix_spawn(path, args, env)
        except OSError as exc:
            os.write(2, f"spawn: {args[0]}: {exc}\n".encode())
            answer = (127, (time.perf_counter() - started) * 1000, 0, floor)
        else:
            _, status, usage = os.wait4(pid, 0)
            ms = (time.perf_counter() - started) * 1000
            answer = (os.waitstatus_to_exitcode(status), ms, usage.ru_maxrss, floor)
        marshal.dump(answer, answers)
        answers.flush()


if __name__ == "__main__":
    main()
