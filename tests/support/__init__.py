"""Test helpers: a throwaway PostgreSQL, a federation PKI in tmp_path, nodes on loopback."""
