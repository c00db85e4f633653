"""`labvirt class serve`: the class as a live web page (labvirt.web over labvirt.ops.dashboard)."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from labvirt.cli.classroom import class_app
from labvirt.cli.options import Connect, LabDir, default_dir
from labvirt.core.errors import LabvirtError

DEFAULT_LISTEN = "127.0.0.1:8765"


def parse_listen(text: str) -> tuple[str, int]:
    """'HOST:PORT' or '[V6]:PORT' -> (host, port). HOST is an IP address or 'localhost'."""
    from ipaddress import ip_address

    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise LabvirtError(f"--listen: got {text!r}; expected HOST:PORT, e.g. 127.0.0.1:8765 or [::1]:8765")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ip_address(host)
    except ValueError:
        raise LabvirtError(f"--listen: {host!r} is not an IP address (use 127.0.0.1, ::1, or this host's address)") from None
    return host, int(port)


def is_loopback(host: str) -> bool:
    from ipaddress import ip_address

    return ip_address(host).is_loopback


def allowed_hosts(host: str) -> list[str]:
    """Host header names the server answers to: its own address (and 'localhost' on loopback)."""
    from ipaddress import ip_address

    if ip_address(host).is_unspecified:
        return ["*"]          # 0.0.0.0 / ::: the names it is reached by are not known here
    name = f"[{host}]" if ":" in host else host
    return [name, "localhost"] if is_loopback(host) else [name]


def _bind(host: str, port: int):
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise LabvirtError(f"--listen {host}:{port}: {e.strerror}") from None
    sock.listen(128)      # connections made as soon as the URL is printed wait for the server's loop
    return sock


@class_app.command("serve")
def serve(
    listen: Annotated[str, typer.Option("--listen", metavar="HOST:PORT",
                                        help="Address to serve on (port 0: any free port).")] = DEFAULT_LISTEN,
    allow_remote: Annotated[bool, typer.Option("--allow-remote",
                                               help="Allow a non-loopback --listen address (prints a warning).")] = False,
    read_only: Annotated[bool, typer.Option("--read-only", help="No token, no actions: the page only shows.")] = False,
    poll: Annotated[float, typer.Option(min=0.1, max=30, help="Simulator: seconds between looks at its node file.")] = 0.5,
    directory: LabDir = "", connect: Connect = None,
) -> None:
    """Serve a live page of the class: every student's nodes, hosts' load, and actions (with the token).

    The page updates itself (libvirt events; the simulator's file is polled). Actions (revert, rebuild,
    start, stop, console lines) need the token printed at start; without it the page is read-only."""
    import secrets

    host, port = parse_listen(listen)
    if not is_loopback(host):
        if not allow_remote:
            raise LabvirtError(f"--listen {listen}: not a loopback address; other machines could reach the "
                               "dashboard. Add --allow-remote to mean it (or use an SSH tunnel to 127.0.0.1)")
        print(f"warning: serving on {host}, reachable from other machines. The token travels in plain HTTP: "
              "anyone who can watch the network can take it. Prefer 127.0.0.1 and an SSH tunnel.",
              file=sys.stderr, flush=True)

    import uvicorn

    from labvirt.ops.dashboard import Dashboard
    from labvirt.web.app import create_app

    token = None if read_only else secrets.token_urlsafe(24)
    dashboard = Dashboard(directory or default_dir(), connect, poll=poll)
    sock = _bind(host, port)
    try:
        dashboard.start()
        app = create_app(dashboard, token, allowed_hosts(host))
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{sock.getsockname()[1]}/"
        n = len(dashboard.view()["students"])
        print(f"labvirt class serve: lab {dashboard.spec.name}, {n} student{'s' if n != 1 else ''}, {url}",
              flush=True)
        if token:
            print(f"actions: open {url}#token={token}  (or paste the token: {token})", flush=True)
        else:
            print("read-only: no actions", flush=True)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2, server_header=False)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        dashboard.close()
        sock.close()
