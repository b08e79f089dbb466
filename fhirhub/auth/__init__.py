"""Who may do what: OAuth 2 client credentials, SMART v2 scopes, roles (issue 13, ADR 0005).

``scopes`` parses and checks SMART scopes, ``roles`` holds the most each role may be granted,
``tokens`` issues and verifies fhirhub's access tokens, ``assertions`` checks a client's
``private_key_jwt``, ``secrets`` makes and checks client secrets.
"""
