"""Tests of the namespace lab itself (openelb_testenv.netlab, routers)."""
