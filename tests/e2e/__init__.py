"""End-to-end tests: openelb in network namespaces with real routers (DESIGN §5)."""
