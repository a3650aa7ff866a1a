"""Pure detectors: no asyncio, sockets or files; table-driven tests."""
