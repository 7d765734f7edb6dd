"""Envoy's ``LocalInfo`` address: the machine's own address, as Envoy derives it.

Envoy's ``Network::Utility::getLocalAddress`` walks the interfaces (``getifaddrs``) and takes the
first IPv4 address that is not loopback, or a loopback one when there is nothing else. Envoy
sends it where it has no downstream to name: a Lua ``httpCall``'s ``x-forwarded-for`` (the async
client appends it when ``send_xff`` is on) and, with ``use_remote_address``, the address the HCM
appends to ``x-forwarded-for`` for a client on loopback. wasmlab reads the same interfaces, so
both proxies on one machine send the same value.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import socket


class _Sockaddr(ctypes.Structure):
    _fields_ = [("sa_family", ctypes.c_ushort), ("sa_data", ctypes.c_ubyte * 14)]


class _Ifaddrs(ctypes.Structure):
    pass


_Ifaddrs._fields_ = [
    ("ifa_next", ctypes.POINTER(_Ifaddrs)),
    ("ifa_name", ctypes.c_char_p),
    ("ifa_flags", ctypes.c_uint),
    ("ifa_addr", ctypes.POINTER(_Sockaddr)),
    ("ifa_netmask", ctypes.POINTER(_Sockaddr)),
    ("ifa_ifu", ctypes.POINTER(_Sockaddr)),
    ("ifa_data", ctypes.c_void_p),
]


def _ipv4_addresses() -> list[str]:
    """IPv4 interface addresses in ``getifaddrs`` order (Linux layout; [] where unavailable)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    except OSError:
        return []
    head = ctypes.POINTER(_Ifaddrs)()
    if libc.getifaddrs(ctypes.byref(head)) != 0:
        return []
    out = []
    try:
        p = head
        while p:
            ifa = p.contents
            if ifa.ifa_addr and ifa.ifa_addr.contents.sa_family == socket.AF_INET:
                # sockaddr_in: port (2 bytes) then the address (4 bytes)
                out.append(socket.inet_ntoa(bytes(ifa.ifa_addr.contents.sa_data[2:6])))
            p = ifa.ifa_next
    finally:
        libc.freeifaddrs(head)
    return out


@functools.cache
def local_address() -> str:
    """The first non-loopback IPv4 interface address, else loopback (Envoy's ``getLocalAddress``)."""
    for addr in _ipv4_addresses():
        if not addr.startswith("127."):
            return addr
    return "127.0.0.1"
