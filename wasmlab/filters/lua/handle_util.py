"""The handle's utilities (Envoy ``StreamHandleWrapper`` ``base64Escape``, ``base64Decode``,
``timestamp``, ``timestampString``, ``importPublicKey``, ``verifySignature``): they need no stream
state beyond the clock and the run's imported key."""

from __future__ import annotations

import base64
from typing import Any

from . import crypto
from .handle_driver import HandleDriver
from .luaobject import LuaApiError, check_integer, check_string, export, opt_string, text
from .wrappers import PublicKeyWrapper


class UtilityApi(HandleDriver):
    """Base64, timestamps and signature checks."""

    public_keys: dict[bytes, tuple[int, int]] | None = None
    public_key_wrapper: PublicKeyWrapper | None = None

    @export("base64Escape")
    def lua_base64_escape(self, *args: Any) -> bytes:
        """@param 1 (string): bytes. @return standard base64 with padding."""
        return base64.b64encode(check_string(args, 1, "base64Escape"))

    @export("base64Decode")
    def lua_base64_decode(self, *args: Any) -> Any:
        """@param 1 (string): base64 (padding optional). @return the bytes, or nil if malformed."""
        return _b64decode(check_string(args, 1, "base64Decode"))

    @export("timestamp")
    def lua_timestamp(self, *args: Any) -> float:
        """@param 1 (EnvoyTimestampResolution, optional): only MILLISECOND. @return ms since epoch."""
        unit = opt_string(args, 1, "timestamp")
        if unit not in (None, b"", b"0"):
            raise LuaApiError("timestamp format must be MILLISECOND.")
        return float(self.proxy.clock.wall_ns() // 1_000_000)

    @export("timestampString")
    def lua_timestamp_string(self, *args: Any) -> bytes:
        """@param 1 (EnvoyTimestampResolution, optional): MILLISECOND (default) or MICROSECOND."""
        unit = opt_string(args, 1, "timestampString")
        now = self.proxy.clock.wall_ns()
        if unit in (None, b"", b"0"):
            return str(now // 1_000_000).encode()
        if unit == b"1":
            return str(now // 1_000).encode()
        raise LuaApiError("timestamp format must be MILLISECOND or MICROSECOND.")

    @export("importPublicKey")
    def lua_import_public_key(self, *args: Any) -> PublicKeyWrapper:
        """@param 1 (string): DER public key. @param 2 (number): its length. @return a key object."""
        der = check_string(args, 1, "importPublicKey")
        n = check_integer(args, 2, "importPublicKey")
        if self.public_key_wrapper is None:  # Envoy keeps the first key of the run
            key = crypto.import_rsa_public_key(der[: max(0, n)])
            if key is None:
                self.public_key_wrapper = PublicKeyWrapper(self, b"")
            else:
                if self.public_keys is None:
                    self.public_keys = {}
                self.public_keys[der[: max(0, n)]] = key
                self.public_key_wrapper = PublicKeyWrapper(self, der)
        return self.public_key_wrapper

    @export("verifySignature", 2)
    def lua_verify_signature(self, *args: Any) -> tuple[Any, Any]:
        """@param 1 (string): hash (sha1...sha512). @param 2 (string): key from importPublicKey.
        @param 3 (string): signature. @param 4 (number): its length. @param 5 (string): data.
        @param 6 (number): its length. @return true, nil or false, error."""
        hash_name = text(check_string(args, 1, "verifySignature"))
        key_str = check_string(args, 2, "verifySignature")
        key = self.public_keys.get(key_str) if self.public_keys is not None else None
        if key is None:
            raise LuaApiError("invalid public key")
        sig = check_string(args, 3, "verifySignature")
        sig_len = check_integer(args, 4, "verifySignature")
        data = check_string(args, 5, "verifySignature")
        data_len = check_integer(args, 6, "verifySignature")
        ok, err = crypto.verify(hash_name, key, sig[:sig_len], data[:data_len])
        return (True, None) if ok else (False, err.encode())


_B64 = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def _b64decode(s: bytes) -> bytes | None:
    core = s.rstrip(b"=")
    pad = len(s) - len(core)
    if pad > 2 or any(c not in _B64 for c in core) or len(core) % 4 == 1:
        return None
    if pad and (len(core) + pad) % 4:
        return None
    try:
        return base64.b64decode(core + b"=" * (-len(core) % 4))
    except ValueError:
        return None
