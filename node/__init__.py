"""Everything one agency does alone: identity, keys, the store.

This package knows nothing of gRPC and imports neither `federation` nor `gateway`.
"""
