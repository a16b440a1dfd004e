"""The node process: gRPC servicers, interceptors, server assembly, configuration, CLI.

Nothing imports this package; it imports `federation` and `node`.
"""
