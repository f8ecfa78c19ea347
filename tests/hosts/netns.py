"""Simulated hosts for tests: Linux network namespaces joined by veth pairs,
made and removed by the test (root only), and TCP forwarders between a
namespace's loopback and another's.

Only namespaces made here and loopback addresses are used: 10.231.<i>.0/30
links live inside the test's own namespaces, nowhere else.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def why_not() -> str | None:
    """Why these tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    probe = f"probe{uuid.uuid4().hex[:6]}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True, check=False).returncode:
        return "ip netns add is not permitted here"
    subprocess.run(["ip", "netns", "del", probe], check=False)
    return None


def ip(*args: str, ns: str | None = None) -> None:
    argv = ["ip", *(["-n", ns] if ns else []), *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")


@contextlib.contextmanager
def entered(ns: str | None) -> Iterator[None]:
    """This thread in namespace ``ns`` (None: the test's own) for the block.
    A socket keeps the namespace it was created in."""
    if ns is None:
        yield
        return
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {ns}")
        try:
            yield
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
    finally:
        os.close(home)
        os.close(target)


class Forwarder:
    """Listens on 127.0.0.1:``port`` in ``listen_ns`` and relays each
    connection to 127.0.0.1:``target_port`` in ``target_ns``."""

    def __init__(
        self, listen_ns: str | None, port: int, target_ns: str | None, target_port: int
    ) -> None:
        self.target_ns, self.target_port = target_ns, target_port
        with entered(listen_ns):
            self.server = socket.create_server(("127.0.0.1", port))
        self.port = self.server.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with entered(self.target_ns):
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            upstream.connect(("127.0.0.1", self.target_port))
        except OSError:
            client.close()
            upstream.close()
            return
        pair = {client: upstream, upstream: client}
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select(list(pair), [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    pair[s].sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def close(self) -> None:
        self._stop.set()
        self.server.close()


class Hosts:
    """A broker namespace and host namespaces, each host linked to the broker
    by its own veth pair: host i reaches the broker at 10.231.i.1."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.broker = f"tb{self.tag}"
        self.hosts: dict[int, str] = {}
        self.forwarders: list[Forwarder] = []
        ip("netns", "add", self.broker)
        ip("link", "set", "lo", "up", ns=self.broker)

    def add_host(self, i: int) -> str:
        ns = f"th{self.tag}{i}"
        ip("netns", "add", ns)
        ip("link", "set", "lo", "up", ns=ns)
        here, there = f"vh{self.tag}{i}", f"vb{self.tag}{i}"
        ip(
            "link",
            "add",
            here,
            "netns",
            ns,
            "type",
            "veth",
            "peer",
            "name",
            there,
            "netns",
            self.broker,
        )
        ip("addr", "add", f"10.231.{i}.2/30", "dev", here, ns=ns)
        ip("addr", "add", f"10.231.{i}.1/30", "dev", there, ns=self.broker)
        ip("link", "set", here, "up", ns=ns)
        ip("link", "set", there, "up", ns=self.broker)
        self.hosts[i] = ns
        return ns

    def broker_address(self, i: int) -> str:
        return f"10.231.{i}.1"

    def cut(self, i: int) -> None:
        """Host i's link goes down: packets to and from it are lost."""
        ip("link", "set", f"vh{self.tag}{i}", "down", ns=self.hosts[i])

    def forward(
        self, listen_ns: str | None, port: int, target_ns: str | None, target_port: int
    ) -> int:
        fwd = Forwarder(listen_ns, port, target_ns, target_port)
        self.forwarders.append(fwd)
        return fwd.port

    def remove(self) -> None:
        for fwd in self.forwarders:
            fwd.close()
        for ns in [*self.hosts.values(), self.broker]:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
