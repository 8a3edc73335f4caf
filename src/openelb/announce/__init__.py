"""The only code that touches the network (DESIGN §3): bgp/ (ExaBGP), layer2/ (ARP, NDP).

Announcers take the whole desired state (`await announcer.set(desired)`) and do the
diffing themselves (STYLE §2.8).
"""
