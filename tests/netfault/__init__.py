"""Network-fault rig: Linux network namespaces on a host bridge, iptables faults inside them,
servers (PostgreSQL, Tansu) started in them, a synchronous-standby failover pair, and a
userspace delay proxy. The fixtures are in `tests.netfault.fixtures` (a plugin that
tests/conftest.py loads); the how-to is in tests/netfault/README.md.
"""
