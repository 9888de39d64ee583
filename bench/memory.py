"""Each worker's resident memory with its verified-token cache filled (issue 21).

gunicorn hands a connection to whichever worker accepts it, so to give every
worker the same N distinct tokens the filler opens keep-alive connections and
keeps, for each worker, one that worker accepted: the server side of a
connection is found in /proc/net/tcp (its remote port is the client's local
port) and its socket inode among the worker's open files. Each worker then
gets all N tokens in order on its own connection, one request each.
"""

from __future__ import annotations

import http.client
import os
import threading
from pathlib import Path


def workers_of(master: int) -> list[int]:
    """The pids of a gunicorn master's workers (its child processes)."""
    children: list[int] = []
    for task in os.listdir(f"/proc/{master}/task"):
        children += [int(pid) for pid in
                     Path(f"/proc/{master}/task/{task}/children").read_text().split()]
    return sorted(children)


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` (VmRSS), KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def _socket_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the server's end of the loopback connection from ``client_port``."""
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            return fields[9]
    return None


def _owner(worker_pids: list[int], inode: str) -> int | None:
    target = f"socket:[{inode}]"
    for pid in worker_pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
        except FileNotFoundError:
            continue
    return None


def connect_to(port: int, worker: int, workers: list[int],
               attempts: int = 200) -> http.client.HTTPConnection:
    """A keep-alive connection that ``worker`` accepted (and answered once)."""
    for _ in range(attempts):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/healthz")
        connection.getresponse().read()
        client_port = connection.sock.getsockname()[1]
        inode = _socket_inode(port, client_port)
        if inode is not None and _owner(workers, inode) == worker:
            return connection
        connection.close()
    raise RuntimeError(f"no connection reached worker {worker} in {attempts} attempts")


def _feed(port: int, worker: int, workers: list[int], tokens: list[str],
          done: list[int]) -> None:
    connection = connect_to(port, worker, workers)
    index = 0
    while index < len(tokens):
        try:
            connection.request("GET", "/api/me",
                               headers={"Authorization": "Bearer " + tokens[index]})
            reply = connection.getresponse()
            reply.read()
        except (http.client.HTTPException, OSError):
            connection.close()  # gunicorn closed an idle keep-alive: the same worker again
            connection = connect_to(port, worker, workers)
            continue
        if reply.status != 200:
            raise RuntimeError(f"worker {worker}: token {index} answered {reply.status}")
        index += 1
    connection.close()
    done.append(worker)


def fill_caches(master: int, port: int, tokens: list[str]) -> dict[str, object]:
    """Send every token to every worker of ``master``; RSS per worker before and after."""
    workers = workers_of(master)
    before = {pid: rss_kib(pid) for pid in workers}
    done: list[int] = []
    errors: list[Exception] = []

    def run(pid: int) -> None:
        try:
            _feed(port, pid, workers, tokens, done)
        except (RuntimeError, OSError, http.client.HTTPException) as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(pid,)) for pid in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=900)
    if errors or sorted(done) != workers:
        raise RuntimeError(f"cache fill incomplete: {errors or done}")
    after = {pid: rss_kib(pid) for pid in workers}
    return {
        "tokens_per_worker": len(tokens),
        "workers": [{"pid": pid, "rss_before_kib": before[pid], "rss_full_kib": after[pid],
                     "bytes_per_token": round((after[pid] - before[pid]) * 1024 / len(tokens))}
                    for pid in workers],
    }


def rss_report(masters: dict[str, int]) -> dict[str, list[int]]:
    """RSS of every worker of each named server, KiB, as it is now."""
    return {name: [rss_kib(pid) for pid in workers_of(master)] for name, master in masters.items()}
