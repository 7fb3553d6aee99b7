"""Personal data at rest: field-level envelope encryption and erasure by crypto-shredding.

``sealing`` is the pure cipher work (AES-256-GCM tokens, DEK wrapping under the master key),
``fields`` finds and replaces values by path in a JSON document, ``keystore`` keeps one wrapped
data key per data subject in PostgreSQL (destroyed on erasure), ``personal`` ties them together
for the publish decision and the read paths. See docs/adr/0018.
"""
