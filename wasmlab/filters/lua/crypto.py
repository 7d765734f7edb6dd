"""RSA signature checks for ``importPublicKey`` / ``verifySignature``, in plain Python.

Envoy uses BoringSSL: ``d2i_PUBKEY`` for a DER ``SubjectPublicKeyInfo`` and ``EVP_DigestVerify``.
wasmlab covers what scripts use in practice, RSA with PKCS#1 v1.5 padding, with the standard
library only (``hashlib`` and big-integer arithmetic). Other key types import as "no key".
"""

from __future__ import annotations

import hashlib

# DigestInfo prefixes of EMSA-PKCS1-v1_5 (RFC 8017 §9.2, note 1)
_DIGEST_INFO = {
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha224": bytes.fromhex("302d300d06096086480165030402040500041c"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
_RSA_OID = bytes.fromhex("2a864886f70d010101")


class _Der:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def read(self, tag: int) -> bytes:
        d = self.data
        if self.pos >= len(d) or d[self.pos] != tag:
            raise ValueError("unexpected DER tag")
        n = d[self.pos + 1]
        self.pos += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(d[self.pos : self.pos + k], "big")
            self.pos += k
        value = d[self.pos : self.pos + n]
        if len(value) != n:
            raise ValueError("truncated DER")
        self.pos += n
        return value


def import_rsa_public_key(der: bytes) -> tuple[int, int] | None:
    """``(n, e)`` from a DER SubjectPublicKeyInfo holding an RSA key, else None."""
    try:
        spki = _Der(_Der(der).read(0x30))
        alg = _Der(spki.read(0x30))
        if alg.read(0x06) != _RSA_OID:
            return None
        bits = spki.read(0x03)
        rsa = _Der(_Der(bits[1:]).read(0x30))
        n = int.from_bytes(rsa.read(0x02), "big")
        e = int.from_bytes(rsa.read(0x02), "big")
    except (ValueError, IndexError):
        return None
    return (n, e) if n > 0 and e > 0 else None


def verify(hash_name: str, key: tuple[int, int], signature: bytes, data: bytes) -> tuple[bool, str]:
    """``(True, "")`` or ``(False, Envoy's message)``."""
    name = hash_name.lower()
    if name not in _DIGEST_INFO:
        return False, f"{hash_name} is not supported."
    n, e = key
    k = (n.bit_length() + 7) // 8
    if len(signature) != k:
        return False, "Failed to verify digest. Error code: 0"
    m = pow(int.from_bytes(signature, "big"), e, n).to_bytes(k, "big")
    t = _DIGEST_INFO[name] + hashlib.new(name, data).digest()
    expected = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
    if k < len(t) + 11 or m != expected:
        return False, "Failed to verify digest. Error code: 0"
    return True, ""
