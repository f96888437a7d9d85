"""IP network functions, with Terraform's arithmetic on prefixes."""

from __future__ import annotations

import ipaddress

from ..types import STRING
from ..values import Value, list_val, string_val
from .base import ArgError, register

CAT = "network"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _parse(prefix: Value, i: int = 0) -> Network:
    try:
        # strict=False: like Go's ParseCIDR, host bits in the address are ignored.
        return ipaddress.ip_network(prefix.raw, strict=False)
    except ValueError as e:
        raise ArgError(i, f'invalid CIDR expression: {e}') from None


def _whole(v: Value, i: int, what: str) -> int:
    if not isinstance(v.raw, int):
        raise ArgError(i, f"{what} must be a whole number")
    return v.raw


@register(CAT, "cidrhost(prefix: string, hostnum: number) -> string",
          "The address of host number hostnum in the prefix (negative numbers count from the end).")
def cidrhost(prefix: Value, hostnum: Value) -> Value:
    net = _parse(prefix)
    n = _whole(hostnum, 1, "host number")
    size = net.num_addresses
    if n < 0:
        n += size
    if not 0 <= n < size:
        raise ArgError(1, f"prefix of {net.prefixlen} bits cannot accommodate a host numbered {hostnum.raw}")
    return string_val(str(net.network_address + n))


@register(CAT, "cidrnetmask(prefix: string) -> string",
          "The subnet mask of an IPv4 prefix, e.g. 255.255.0.0.")
def cidrnetmask(prefix: Value) -> Value:
    net = _parse(prefix)
    if net.version != 4:
        raise ArgError(0, "only IPv4 networks are supported")
    return string_val(str(net.netmask))


def _subnet(net: Network, newbits: int, netnum: int) -> Network:
    maxbits = net.max_prefixlen
    newlen = net.prefixlen + newbits
    if newlen > maxbits:
        raise ArgError(1, f"insufficient address space to extend prefix of {net.prefixlen} by {newbits}")
    count = 1 << newbits
    if netnum < 0:
        netnum += count
    if not 0 <= netnum < count:
        raise ArgError(2, f"prefix extension of {newbits} does not accommodate a subnet numbered {netnum}")
    start = int(net.network_address) + (netnum << (maxbits - newlen))
    return type(net)((start, newlen))


@register(CAT, "cidrsubnet(prefix: string, newbits: number, netnum: number) -> string",
          "Subnet number netnum of the prefix extended by newbits bits.")
def cidrsubnet(prefix: Value, newbits: Value, netnum: Value) -> Value:
    net = _parse(prefix)
    nb = _whole(newbits, 1, "newbits")
    if nb < 0:
        raise ArgError(1, "must extend prefix by at least zero bits")
    return string_val(str(_subnet(net, nb, _whole(netnum, 2, "netnum"))))


@register(CAT, "cidrsubnets(prefix: string, ...newbits: number) -> list(string)",
          "Consecutive, non-overlapping subnets of the prefix, one per newbits argument.")
def cidrsubnets(prefix: Value, *newbits: Value) -> Value:
    net = _parse(prefix)
    maxbits = net.max_prefixlen
    space = 1 << maxbits
    base = int(net.network_address)
    end = base + net.num_addresses
    # Walk like go-cidr's NextSubnet, starting just before the prefix.
    cur_start, cur_len = (base - (1 << (maxbits - net.prefixlen))) % space, net.prefixlen
    out = []
    for i, nbv in enumerate(newbits, start=1):
        nb = _whole(nbv, i, "newbits")
        if nb < 1:
            raise ArgError(i, "must extend prefix by at least one bit")
        if nb > 32:
            raise ArgError(i, "may not extend prefix by more than 32 bits")
        length = net.prefixlen + nb
        if length > maxbits:
            raise ArgError(i, f"would extend prefix to {length} bits, which is too long for an "
                              f"IPv{net.version} address")
        cur_last = cur_start + (1 << (maxbits - cur_len)) - 1
        block = 1 << (maxbits - length)
        containing = cur_last - cur_last % block
        nxt = containing + block
        if nxt >= space or not base <= nxt < end:
            prev = type(net)((cur_start % space, cur_len))
            raise ArgError(i, f"not enough remaining address space for a subnet with a prefix of {length} bits "
                              f"after {prev}")
        cur_start, cur_len = nxt, length
        out.append(string_val(str(type(net)((nxt, length)))))
    return list_val(out, STRING)
