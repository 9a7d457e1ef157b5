"""Which camera sources the service may open: the ``sources:`` section of the configuration.

Anyone who may add a camera chooses what the service reads and where it connects, so the service
checks every camera URL against this policy where it enters (the configuration file and
``POST /cameras``) before anything opens it:

- **files** only inside ``file_dirs`` (symbolic links resolved first); by default no folder, so
  ``actwatch serve`` opens no file unless the configuration names its folder. A file outside those
  folders gets exactly the answer a missing file gets, so the API cannot be used to probe the disk;
- **network sources** (rtsp, rtsps, http, https) to any host unless ``deny_hosts`` or ``allow_hosts``
  say otherwise. Entries are host names (``cam.local``, ``*.example.com``), addresses or CIDR
  networks; a name is resolved and *every* address it resolves to must pass. ``deny_hosts`` wins;
  a non-empty ``allow_hosts`` admits only what it lists;
- **webcams** (``0``, ``webcam:0``, ``/dev/video0``) unless ``webcams`` is false.

Example:
    >>> policy = SourcePolicy(deny_hosts=["169.254.0.0/16", "metadata.internal"])
    >>> policy.admit("rtsp://user:pw@10.0.0.5/live").masked
    'rtsp://user:***@10.0.0.5/live'
    >>> try:
    ...     policy.admit("http://169.254.169.254/latest/meta-data")
    ... except SourceError as exc:
    ...     print(exc)
    host '169.254.169.254' is not allowed by the camera URL policy (sources.allow_hosts / sources.deny_hosts)
    >>> try:
    ...     policy.admit("/etc/shadow")
    ... except SourceError as exc:
    ...     print(str(exc).split(";")[0])
    video file '/etc/shadow' does not exist or is not inside a folder of sources.file_dirs
"""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from actwatch.capture.sources import ACCEPTED_FORMS, SourceSpec
from actwatch.errors import SourceError
from actwatch.settings import StrictModel

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_HOST_NAME = re.compile(r"^(\*\.)?[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*\.?$")


def _network(entry: str) -> IpNetwork | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


def _normalise(address: str) -> IpAddress:
    """An address as a rule compares it: no IPv6 scope, IPv4-mapped IPv6 as the IPv4 address."""
    parsed = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


def _name_matches(rule: str, host: str) -> bool:
    rule = rule.rstrip(".")
    if rule.startswith("*."):
        return host.endswith(rule[1:])
    return host == rule


def _check_host_rule(entry: str) -> str:
    text = entry.strip().lower()
    if _network(text) is None and not _HOST_NAME.match(text):
        raise ValueError(f"'{entry}' is not a host name (cam.local, *.example.com), an address or a CIDR network")
    return text


class SourcePolicy(StrictModel):
    """The camera URL policy (the ``sources:`` section): which files, hosts and webcams may be cameras.

    Example:
        >>> SourcePolicy(allow_hosts=["10.0.0.0/8", "*.cams.example"]).allow_hosts
        ['10.0.0.0/8', '*.cams.example']
    """

    file_dirs: list[Path] = Field(
        default_factory=list,
        description="Folders whose video files (sub-folders included, symbolic links resolved) may be cameras; "
        "empty (the default): no file may be a camera.",
    )
    allow_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts network sources may connect to: names (cam.local, *.example.com), addresses or CIDR "
        "networks (10.0.0.0/8); a name must resolve to allowed addresses only. Empty (the default): any host "
        "that deny_hosts does not refuse.",
    )
    deny_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts network sources may never connect to (same forms as allow_hosts); checked first, "
        "against the name and every address it resolves to.",
    )
    webcams: bool = Field(True, description="Whether local webcams (0, webcam:0, /dev/video0) may be cameras.")

    @field_validator("allow_hosts", "deny_hosts")
    @classmethod
    def _host_rules(cls, value: list[str]) -> list[str]:
        return [_check_host_rule(entry) for entry in value]

    def admit(self, url: str) -> SourceSpec:
        """``url`` parsed, if this policy allows it; else :class:`SourceError` saying why (masked).

        A file outside ``file_dirs`` reads exactly like a missing file.
        """
        spec = SourceSpec.parse(url, locate_files=False)
        if spec.kind == "file":
            return self._admit_file(spec.url)
        if spec.kind == "webcam":
            if not self.webcams:
                raise SourceError(f"webcam source {spec.masked!r} is not allowed (sources.webcams is false)")
            return spec
        self._check_host(spec)
        return spec

    def _admit_file(self, path_text: str) -> SourceSpec:
        resolved = Path(path_text).expanduser().resolve()
        inside = any(resolved.is_relative_to(folder.expanduser().resolve()) for folder in self.file_dirs)
        if not inside or not resolved.exists():
            # One message for both: the answer must not tell whether a path outside the folders exists.
            raise SourceError(
                f"video file {path_text!r} does not exist or is not inside a folder of sources.file_dirs; "
                f"accepted: {ACCEPTED_FORMS}"
            )
        return SourceSpec.parse(str(resolved))

    def _check_host(self, spec: SourceSpec) -> None:
        if not self.allow_hosts and not self.deny_hosts:
            return
        host = (urlsplit(spec.url).hostname or "").rstrip(".")
        named = self.allow_hosts and _name_listed(self.allow_hosts, host)
        # Resolve only when an address rule decides: a deny network always, an allow network unless
        # the name itself is allowed. A name that does not resolve then fails closed.
        needs_addresses = _has_network(self.deny_hosts) or (not named and _has_network(self.allow_hosts))
        if _name_listed(self.deny_hosts, host):
            allowed = False
        else:
            addresses = self._addresses(host, spec) if needs_addresses else []
            denied = any(_address_listed(self.deny_hosts, address) for address in addresses)
            allowed = not denied and (
                not self.allow_hosts
                or named
                or (bool(addresses) and all(_address_listed(self.allow_hosts, address) for address in addresses))
            )
        if not allowed:
            raise SourceError(
                f"host {host!r} is not allowed by the camera URL policy (sources.allow_hosts / sources.deny_hosts)"
            )

    @staticmethod
    def _addresses(host: str, spec: SourceSpec) -> list[IpAddress]:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            raise SourceError(
                f"host {host!r} of {spec.masked!r} does not resolve; with sources.allow_hosts "
                "or sources.deny_hosts set, every network source's host must resolve"
            ) from None
        return sorted({_normalise(str(info[4][0])) for info in infos}, key=str)


def _name_listed(rules: list[str], host: str) -> bool:
    return any(_network(rule) is None and _name_matches(rule, host) for rule in rules)


def _address_listed(rules: list[str], address: IpAddress) -> bool:
    return any(network is not None and address in network for network in map(_network, rules))


def _has_network(rules: list[str]) -> bool:
    return any(_network(rule) is not None for rule in rules)
