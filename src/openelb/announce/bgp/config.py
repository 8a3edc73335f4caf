"""Renders ExaBGP's configuration file from the planner's peers.

announce/bgp (DESIGN §3); pure text generation, compared with golden files in tests and
loaded by a real ExaBGP in integration tests. Routes are not in the file: they go
through the API so they can change without a reload. Each neighbour keeps an adj-rib-out
so ExaBGP re-sends our routes by itself after a session flap.
"""

import base64
from collections.abc import Iterable

from openelb.planner import bgp

__all__ = ["GENERATION_MARK", "PROCESS_NAME", "render"]

PROCESS_NAME = "openelb"
GENERATION_MARK = "[config {}]"  # ends every neighbour's description (see render)


def _quote(text: str) -> str:
    # ExaBGP's tokenizer has no escapes inside quotes: keep descriptions printable and
    # free of quotes (passwords go base64-encoded, see _neighbor).
    cleaned = "".join(c if c.isprintable() and c not in '"\\;{}' else "_" for c in text)
    return f'"{cleaned}"'


def render(speaker: bgp.GlobalSpec | None, peers: Iterable[bgp.PeerSpec],
           bridge_argv: list[str], generation: int = 0) -> str:
    """The whole configuration; `bridge_argv` is the API process ExaBGP runs.

    Each neighbour's description ends in `[config <generation>]`: the engine reads the
    configuration back (`show neighbor configuration`) and knows a reload took effect
    when every neighbour shows the generation it wrote (engine.py). ExaBGP does not
    compare descriptions when it decides whether a neighbour changed (exabgp 5.0.15,
    Neighbor.__eq__), so the marker never resets a session."""
    lines = [
        f"process {PROCESS_NAME} {{",
        f"    run {' '.join(bridge_argv)};",
        "    encoder json;",
        "}",
        "",
    ]
    listen = speaker.listen_port if speaker is not None and speaker.listen_port > 0 else 0
    for peer in sorted(peers, key=lambda p: str(p.address)):
        if peer.admin_down:
            continue  # adminDown: no session at all
        lines += _neighbor(peer, listen, generation)
    return "\n".join(lines) + "\n"


def _neighbor(peer: bgp.PeerSpec, listen: int, generation: int) -> list[str]:
    out = [f"neighbor {peer.address} {{"]
    out.append(f"    description {_quote(peer.description or peer.name)[:-1]} "
               f'{GENERATION_MARK.format(generation)}";')
    out.append(f"    router-id {peer.router_id};")
    if peer.local_address is not None and peer.local_address.version == peer.address.version:
        out.append(f"    local-address {peer.local_address};")
    out.append(f"    local-as {peer.local_as};")
    out.append(f"    peer-as {peer.peer_as};")
    out.append(f"    hold-time {max(3, int(peer.hold_time))};")
    if peer.password:
        # Base64 so that any character a user puts in authPassword survives the config
        # syntax (ExaBGP decodes it before handing the key to the kernel's TCP-MD5).
        encoded = base64.b64encode(peer.password.encode()).decode()
        out.append(f"    md5-password {encoded};")
        out.append("    md5-base64 true;")
    if peer.multihop_ttl is not None:
        out.append(f"    outgoing-ttl {peer.multihop_ttl};")
    out.append(f"    passive {'true' if peer.passive else 'false'};")
    if listen:
        out.append(f"    listen {listen};")
    if peer.remote_port != 179:
        out.append(f"    connect {peer.remote_port};")
    out.append("    adj-rib-out true;")
    out.append("    family {")
    for version in sorted(peer.families):
        out.append(f"        ipv{version} unicast;")
    out.append("    }")
    capabilities = ["        route-refresh;"]
    if peer.graceful_restart is not None:
        capabilities.append(f"        graceful-restart {peer.graceful_restart};")
    if peer.add_path_send:
        capabilities.append("        add-path send;")
    out += ["    capability {", *capabilities, "    }"]
    out += [
        "    api {",
        f"        processes [ {PROCESS_NAME} ];",
        "        neighbor-changes;",
        "    }",
        "}",
        "",
    ]
    return out
