"""The API program ExaBGP runs: relays its stdin/stdout to the speaker's unix socket.

announce/bgp; started by ExaBGP (`run python -m openelb.announce.bgp.bridge SOCKET`),
never imported by the speaker. Written by hand because it is a byte pipe with no logic:
ExaBGP talks to API programs only over their stdin/stdout, and the speaker must stay
the owner of ExaBGP (not its child). When either side closes, the bridge exits; ExaBGP
respawns it and the speaker re-sends its state on the new connection.
"""

import os
import socket
import sys
import threading
import time


def _pump_stdin(sock: socket.socket) -> None:
    # ExaBGP -> speaker: answers (`done`/`error`) and JSON neighbour events.
    for line in sys.stdin.buffer:
        sock.sendall(line)
    os._exit(0)


def main() -> None:
    path = sys.argv[1]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    for _ in range(100):  # the speaker may still be binding its socket
        try:
            sock.connect(path)
            break
        except OSError:
            time.sleep(0.1)
    else:
        sys.stderr.write(f"bridge: cannot connect to {path}\n")
        os._exit(1)
    threading.Thread(target=_pump_stdin, args=(sock,), daemon=True).start()
    # speaker -> ExaBGP: commands, one per line.
    with sock.makefile("rb") as commands:
        for line in commands:
            sys.stdout.buffer.write(line)
            sys.stdout.buffer.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
