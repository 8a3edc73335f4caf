"""Two network namespaces joined by a veth pair: the layer-2 announcer's test bench.

Namespace A ("the node") runs helper.py's announcer on interface l2t-a; namespace B
("the LAN client") asks with real tools (arping, ndisc6, ping) and reads its neighbour
table. Names start with `oelb-l2t-` (STYLE §2.15), addresses are documentation ranges
only, the VIPs are never configured on an interface (the kernel would answer for them
itself), and nothing outside the two namespaces is touched. `Lab.down` kills every
helper and deletes both namespaces; conftest.py calls it in a finally.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import subprocess
import sys
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any, TypeVar

PREFIX = "oelb-l2t-"
A_IF, B_IF = "l2t-a", "l2t-b"
A4, B4 = "192.0.2.1", "192.0.2.2"
A6, B6 = "2001:db8:1::1", "2001:db8:1::2"
VIP4 = IPv4Address("192.0.2.200")
VIP6 = IPv6Address("2001:db8:1::200")
MAC_A, MAC_B = "02:00:00:00:0a:01", "02:00:00:00:0b:01"  # fixed: captured fixtures use them
WRONG_MAC = "02:00:00:00:00:99"
HELPER = Path(__file__).with_name("helper.py")

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 10.0,
             interval: float = 0.05) -> T:
    """Poll `probe` until it returns something other than None (STYLE §2.14)."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Helper:
    """helper.py running in a namespace; one JSON object per line each way."""

    def __init__(self, namespace: str, args: list[str], log: Path) -> None:
        self.log = log
        self._stderr = log.open("wb")
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, sys.executable, str(HELPER), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr)
        self._pending = b""
        ready = self.read(timeout=15.0)
        assert ready == {"ready": True}, f"helper did not start: {ready}; see {log}"

    def read(self, timeout: float) -> dict[str, Any] | None:
        """The next line as JSON, or None if none arrives within `timeout` seconds."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                raise AssertionError(f"helper exited ({self.process.poll()}); see {self.log}")
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        return message

    def call(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        self.process.stdin.flush()
        answer = self.read(timeout=15.0)
        assert answer is not None, f"no answer to {command}; see {self.log}"
        return answer

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()
        self._stderr.close()


class Announcer(Helper):
    def set(self, *claims: tuple[IPv4Address | IPv6Address, str]) -> dict[str, Any]:
        answer = self.call(op="set", claims=[[str(ip), name] for ip, name in claims])
        assert answer["ok"], answer
        return answer

    def counters(self) -> dict[str, Any]:
        counters: dict[str, Any] = self.call(op="counters")["counters"]
        return counters

    def close(self) -> None:
        assert self.call(op="close") == {"ok": True}
        assert self.process.wait(timeout=10) == 0


class Lab:
    def __init__(self, logs: Path) -> None:
        token = secrets.token_hex(3)
        self.a, self.b = f"{PREFIX}{token}-a", f"{PREFIX}{token}-b"
        self.logs = logs
        self.helpers: list[Helper] = []
        self.mac_a = self.mac_b = ""

    # -- plumbing ------------------------------------------------------------------------

    def sh(self, namespace: str, *argv: str, check: bool = True,
           timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside `namespace`."""
        result = subprocess.run(["ip", "netns", "exec", namespace, *argv], capture_output=True,
                                text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} in {namespace} failed "
                                 f"({result.returncode}): {result.stdout}{result.stderr}")
        return result

    def up(self) -> None:
        subprocess.run(["ip", "netns", "add", self.a], check=True)
        subprocess.run(["ip", "netns", "add", self.b], check=True)
        for ns in (self.a, self.b):
            # No duplicate address detection: addresses are usable at once.
            self.sh(ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
                    "net.ipv6.conf.default.accept_dad=0")
            self.sh(ns, "ip", "link", "set", "lo", "up")
        self.sh(self.a, "ip", "link", "add", A_IF, "type", "veth", "peer", "name", B_IF,
                "netns", self.b)
        for ns, name, mac, v4, v6 in ((self.a, A_IF, MAC_A, A4, A6),
                                      (self.b, B_IF, MAC_B, B4, B6)):
            self.sh(ns, "ip", "link", "set", name, "address", mac)
            self.sh(ns, "ip", "addr", "add", f"{v4}/24", "dev", name)
            self.sh(ns, "ip", "addr", "add", f"{v6}/64", "dev", name, "nodad")
            self.sh(ns, "ip", "link", "set", name, "up")
        self.mac_a = self._mac(self.a, A_IF)
        self.mac_b = self._mac(self.b, B_IF)

    def down(self) -> None:
        for helper in self.helpers:
            with contextlib.suppress(Exception):
                helper.stop()
        for ns in (self.a, self.b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)

    def _mac(self, namespace: str, name: str) -> str:
        shown = json.loads(self.sh(namespace, "ip", "-j", "link", "show", name).stdout)
        mac: str = shown[0]["address"]
        return mac

    # -- helpers in the namespaces -----------------------------------------------------

    def announcer(self, *, repeats: int = 3, interval: float = 0.5) -> Announcer:
        log = self.logs / f"announcer-{len(self.helpers)}.log"
        helper = Announcer(self.a, ["announce", "--repeats", str(repeats),
                                    "--interval", str(interval)], log)
        self.helpers.append(helper)
        return helper

    def sniffer(self, *, everything: bool = False) -> Helper:
        """Reports gratuitous ARPs / unsolicited NAs (or every frame) as B sees them."""
        helper = Helper(self.b, ["sniff", B_IF, *(["--all"] if everything else [])],
                        self.logs / f"sniffer-{len(self.helpers)}.log")
        self.helpers.append(helper)
        return helper

    # -- the LAN client's view ---------------------------------------------------------

    def neighbour(self, ip: IPv4Address | IPv6Address) -> tuple[str, str] | None:
        """B's entry for `ip`: (lladdr or "", first state), or None if there is none."""
        shown = json.loads(self.sh(self.b, "ip", "-j", "neigh", "show", "to", str(ip),
                                   "dev", B_IF).stdout or "[]")
        if not shown:
            return None
        return shown[0].get("lladdr", ""), shown[0]["state"][0]

    def seed_neighbour(self, ip: IPv4Address | IPv6Address, mac: str) -> None:
        self.sh(self.b, "ip", "neigh", "replace", str(ip), "lladdr", mac, "dev", B_IF,
                "nud", "stale")

    def forget_neighbour(self, ip: IPv4Address | IPv6Address) -> None:
        self.sh(self.b, "ip", "neigh", "flush", "to", str(ip), "dev", B_IF, check=False)

    def ping(self, ip: IPv4Address | IPv6Address) -> None:
        """One echo from B (A won't answer: the VIP isn't local); resolves the neighbour."""
        self.sh(self.b, "ping", f"-{ip.version}", "-c1", "-W1", str(ip), check=False)

    def arping(self, ip: IPv4Address) -> subprocess.CompletedProcess[str]:
        return self.sh(self.b, "arping", "-c1", "-w2", "-I", B_IF, str(ip), check=False)

    def ndisc6(self, ip: IPv6Address) -> subprocess.CompletedProcess[str]:
        return self.sh(self.b, "ndisc6", "-1", "-r1", "-w1000", str(ip), B_IF, check=False)


def leftover_namespaces() -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                            check=False).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith(PREFIX)]
