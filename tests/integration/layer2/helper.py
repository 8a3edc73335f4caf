"""A process inside a lab namespace, driven over stdin/stdout with one JSON object a line.

Started by lab.py under `ip netns exec`, so its sockets live in that namespace.

    helper.py announce [--repeats N] [--interval S]
        runs a Layer2Announcer; commands: {"op": "set", "claims": [[ip, interface], ...]},
        {"op": "resolve", "spec": ..., "ip": ...}, {"op": "counters"}, {"op": "close"}
    helper.py sniff INTERFACE [--all]
        prints every gratuitous ARP / unsolicited NA seen on INTERFACE with the
        CLOCK_MONOTONIC time it was read (shared by all namespaces); with --all,
        every frame in and out as hex (capture_frames.py records fixtures with it)

Each prints {"ready": true} first. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time
from ipaddress import ip_address
from typing import Any

from openelb import logfmt
from openelb.announce import layer2
from openelb.announce.layer2 import arp, ethernet, ndp

ETH_P_ALL = 0x0003


def _emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _counters(counters: layer2.Counters) -> dict[str, Any]:
    return {
        "requests_received": {str(k): v for k, v in counters.requests_received.items()},
        "replies_sent": {str(k): v for k, v in counters.replies_sent.items()},
        "gratuitous_sent": {str(k): v for k, v in counters.gratuitous_sent.items()},
        "send_errors": {str(k): v for k, v in counters.send_errors.items()},
        "drops": {f"{f}/{r}": v for (f, r), v in counters.drops.items()},
    }


async def _announce(repeats: int, interval: float) -> None:
    announcer = layer2.Layer2Announcer(garp_repeats=repeats, garp_interval=interval)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    _emit({"ready": True})
    try:
        while line := await reader.readline():
            command = json.loads(line)
            op = command["op"]
            try:
                if op == "set":
                    claims = frozenset(layer2.Claim(ip_address(ip), name)
                                       for ip, name in command["claims"])
                    t0 = time.monotonic()
                    await announcer.set(claims)
                    _emit({"ok": True, "t0": t0, "t1": time.monotonic()})
                elif op == "resolve":
                    found = layer2.resolve_interface(command["spec"], ip_address(command["ip"]))
                    _emit({"ok": True, "interface": found})
                elif op == "counters":
                    _emit({"ok": True, "counters": _counters(announcer.counters)})
                elif op == "close":
                    await announcer.aclose()
                    _emit({"ok": True})
                    return
                else:
                    _emit({"ok": False, "error": f"unknown op {op!r}"})
            except layer2.Layer2Error as exc:
                _emit({"ok": False, "error": str(exc)})
    finally:
        await announcer.aclose()


def _sniff(interface: str, everything: bool) -> None:
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL)) as sock:
        sock.bind((interface, ETH_P_ALL))
        _emit({"ready": True})
        while True:
            frame = sock.recv(65535)
            seen = time.monotonic()
            if everything:
                _emit({"t": seen, "frame": frame.hex()})
                continue
            parsed = ethernet.parse(frame)
            if parsed is None:
                continue
            header, payload = parsed
            if header.ethertype == ethernet.ETHERTYPE_ARP:
                packet = arp.parse(payload)
                if packet is not None and packet.sender_ip == packet.target_ip:
                    _emit({"t": seen, "family": "ipv4", "ip": str(packet.sender_ip),
                           "mac": ethernet.format_mac(packet.sender_mac)})
            elif header.ethertype == ethernet.ETHERTYPE_IPV6:
                ipv6 = ndp.parse_ipv6(payload)
                icmp = ndp.parse_icmpv6(ipv6[1]) if ipv6 is not None else None
                if (ipv6 is None or icmp is None
                        or icmp.type != ndp.TYPE_NEIGHBOR_ADVERTISEMENT
                        or ipv6[0].destination != ndp.ALL_NODES):
                    continue
                advert = ndp.parse_advertisement(icmp.body)
                if advert is not None and advert.target_mac is not None:
                    _emit({"t": seen, "family": "ipv6", "ip": str(advert.target),
                           "mac": ethernet.format_mac(advert.target_mac)})


def main() -> None:
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    announce = commands.add_parser("announce")
    announce.add_argument("--repeats", type=int, default=3)
    announce.add_argument("--interval", type=float, default=0.5)
    sniff = commands.add_parser("sniff")
    sniff.add_argument("interface")
    sniff.add_argument("--all", action="store_true")
    args = parser.parse_args()
    logfmt.setup("debug")
    if args.command == "announce":
        asyncio.run(_announce(args.repeats, args.interval))
    else:
        _sniff(args.interface, args.all)


if __name__ == "__main__":
    main()
