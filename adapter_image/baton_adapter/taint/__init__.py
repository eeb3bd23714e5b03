"""Taint analysis in the data plane: canary values whose fingerprint can be read back from the value alone
(:mod:`.values`), and the scanning of traffic for the fingerprints the control plane marks active.

Only the standard library is imported here and in :mod:`.values`: the control plane's log pump uses them too.
"""
