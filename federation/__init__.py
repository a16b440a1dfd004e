"""Everything between agencies: agreements, peers, signed exchanges, receipts.

It uses `node` for storage and audit and never imports `gateway`. The
"Exchange" issue fills it; for now partners reach a node only through the
FederationService the gateway serves.
"""
