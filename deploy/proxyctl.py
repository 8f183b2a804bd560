"""Small helpers for deploy/serve.sh (standard library only, any Python >= 3.8).

    proxyctl.py port-free ADDRESS PORT   exit 0 if a listener could bind ADDRESS:PORT, else 1
    proxyctl.py free-ports N             N distinct free loopback ports, one a line
    proxyctl.py cpus                     the CPUs this process may run on, one a line
    proxyctl.py secret                   a random hex string (Streamlit's cookie secret)
    proxyctl.py admin SOCKET COMMAND     send one command to HAProxy's admin socket, print the answer
    proxyctl.py state SOCKET SERVER      the health state HAProxy reports for backend/SERVER (UP, DOWN, MAINT, ...)
"""
from __future__ import annotations

import os
import secrets
import socket
import sys

BACKEND = "streamlit"


def port_free(address: str, port: int) -> bool:
    # SO_REUSEADDR as HAProxy and Streamlit set it: a port in TIME_WAIT is free, a listener is not.
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
            s.listen(1)
        except OSError:
            return False
    return True


def free_ports(n: int) -> list[int]:
    held = []
    try:
        while len(held) < n:  # keep every socket bound until all are chosen, so the ports differ
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


def admin(sock_path: str, command: str, timeout: float = 5.0) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(command.encode() + b"\n")
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


def server_state(sock_path: str, server: str) -> str:
    """The "status" column of HAProxy's CSV statistics for BACKEND/server."""
    lines = admin(sock_path, "show stat").splitlines()
    header = lines[0].lstrip("# ").split(",")
    pxname, svname, status = header.index("pxname"), header.index("svname"), header.index("status")
    for line in lines[1:]:
        cols = line.split(",")
        if len(cols) > status and cols[pxname] == BACKEND and cols[svname] == server:
            return cols[status]
    return "UNKNOWN"


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "port-free" and len(args) == 2:
        return 0 if port_free(args[0], int(args[1])) else 1
    if cmd == "free-ports" and len(args) == 1:
        print("\n".join(map(str, free_ports(int(args[0])))))
        return 0
    if cmd == "cpus" and not args:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
        print("\n".join(map(str, cpus)))
        return 0
    if cmd == "secret" and not args:
        print(secrets.token_hex(32))
        return 0
    if cmd == "admin" and len(args) == 2:
        sys.stdout.write(admin(args[0], args[1]))
        return 0
    if cmd == "state" and len(args) == 2:
        try:
            print(server_state(args[0], args[1]))
        except OSError:
            print("UNKNOWN")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
