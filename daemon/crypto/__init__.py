"""Data protection: the keyring (AES-256-GCM, key ids, AAD), blind index, masks, dev keys, rotation.

Import what you need from the submodules (`daemon.crypto.keyring`,
`daemon.crypto.masks`, `daemon.crypto.usage`, `daemon.crypto.rotation`).
"""
