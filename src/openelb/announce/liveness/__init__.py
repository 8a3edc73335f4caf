"""Liveness between speakers, independent of the apiserver (DESIGN §4, issue 6).

Speakers send each other small authenticated UDP heartbeats on the node network.
`codec` signs and verifies them (pure), `membership` decides who is alive (pure, clock
passed in), `udp` sends and receives them on the event loop.
"""
