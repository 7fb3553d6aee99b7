"""A verifiable audit trail (ADR 0017): who changed what, and every refused authorization.

- :mod:`esb.audit.entry`: what an entry holds and its canonical bytes (what is hashed);
- :mod:`esb.audit.merkle`: RFC 6962 hashing and proofs (pure);
- :mod:`esb.audit.checkpoints`: Ed25519-signed checkpoints (tree size, root, time);
- :mod:`esb.audit.log`: the append-only PostgreSQL store, one gapless log per tenant;
- :mod:`esb.audit.verify`: recompute every tree and check it against the signed checkpoints;
- :mod:`esb.audit.policy`: which requests are recorded and what of them.
"""
