"""Tests of the namespace lab itself (openelb.testenv.netlab, routers)."""
