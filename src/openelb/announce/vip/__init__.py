"""VIP mode's announcer: keepalived (VRRP) holds each address on one node.

announce/ (DESIGN §3): touches the network only through keepalived, which it runs
and supervises. `config.render` turns instances into keepalived.conf; `Keepalived`
runs it. Import submodules as namespaces.
"""

from openelb.announce.vip import config, errors, keepalived

__all__ = ["config", "errors", "keepalived"]
