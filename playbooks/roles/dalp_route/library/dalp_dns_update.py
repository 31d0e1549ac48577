#!/usr/bin/python
"""Ansible module: point a DNS name's A record at an address, by an RFC 2136 dynamic update
signed with TSIG (dnspython), or ask the server what the name answers now.

Runs where dnspython is importable (the controller: ansible_connection: local,
ansible_python_interpreter: "{{ ansible_playbook_python }}"). The TSIG secret is a no_log
option: it reaches no log, no result and no error message.
"""

from __future__ import annotations

import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: dalp_dns_update
short_description: Replace a name's A record (RFC 2136, TSIG-signed), or query it
options:
  server: {description: address of the zone's primary server, required: true, type: str}
  port: {description: its port, type: int, default: 53}
  zone: {description: the zone the name is in (update), type: str}
  name: {description: the name (absolute, or relative to the zone), required: true, type: str}
  address: {description: the IPv4 address the name must answer (update; query, optional), type: str}
  ttl: {description: the record's TTL in seconds (update), type: int}
  tsig_name: {description: the TSIG key's name (update), type: str}
  tsig_algorithm: {description: the TSIG algorithm, type: str, default: hmac-sha256}
  tsig_secret: {description: the TSIG secret, base64 (update; kept out of logs), type: str}
  state: {description: updated (send the update) or query (read only), type: str, default: updated}
  timeout: {description: seconds for each exchange with the server, type: float, default: 5}
  wait_seconds:
    description: query, with address - ask again until the name answers it or this long passed
    type: float
    default: 0
"""

RETURN = r"""
addresses: {description: what the name answers (before an update; after a query), type: list}
ttl: {description: the answer's TTL, type: int}
acknowledged_at:
  description: epoch seconds when the server acknowledged the update (or found it in place)
  type: float
on_expected: {description: the name answers exactly the address given, type: bool}
"""


def _absolute(name: str, zone: str | None) -> Any:
    import dns.name

    if name.endswith("."):
        return dns.name.from_text(name)
    origin = dns.name.from_text(zone) if zone else dns.name.root
    return dns.name.from_text(name, origin=origin)


def _answer(server: str, port: int, name: Any, timeout: float) -> tuple[list[str], int, str]:
    """The A addresses the server answers for the name (authoritatively), their TTL, and a
    problem ("" when it answered)."""
    import dns.exception
    import dns.flags
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    query = dns.message.make_query(name, dns.rdatatype.A)
    query.flags &= ~dns.flags.RD
    try:
        response = dns.query.udp(query, server, port=port, timeout=timeout)
        if response.flags & dns.flags.TC:
            response = dns.query.tcp(query, server, port=port, timeout=timeout)
    except (dns.exception.DNSException, OSError) as exc:
        return [], 0, f"{type(exc).__name__}: {exc}"
    if response.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return [], 0, f"the server answered {dns.rcode.to_text(response.rcode())}"
    for rrset in response.answer:
        if rrset.name == name and rrset.rdtype == dns.rdatatype.A:
            return sorted(r.address for r in rrset), int(rrset.ttl), ""
    return [], 0, ""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "server": {"type": "str", "required": True},
            "port": {"type": "int", "default": 53},
            "zone": {"type": "str"},
            "name": {"type": "str", "required": True},
            "address": {"type": "str"},
            "ttl": {"type": "int"},
            "tsig_name": {"type": "str"},
            "tsig_algorithm": {"type": "str", "default": "hmac-sha256"},
            "tsig_secret": {"type": "str", "no_log": True},
            "state": {"type": "str", "default": "updated", "choices": ["updated", "query"]},
            "timeout": {"type": "float", "default": 5.0},
            "wait_seconds": {"type": "float", "default": 0.0},
        },
        required_if=[("state", "updated", ("zone", "address", "ttl", "tsig_name", "tsig_secret"))],
        supports_check_mode=True,
    )
    p = module.params
    try:
        import dns.exception
        import dns.name
        import dns.query
        import dns.rcode
        import dns.tsig
        import dns.tsigkeyring
        import dns.update
    except ImportError as exc:
        module.fail_json(msg=f"dnspython is not importable here ({exc}): run this module on the "
                             "controller with ansible_python_interpreter: "
                             "'{{ ansible_playbook_python }}'")
        return
    try:
        name = _absolute(p["name"], p["zone"])
    except dns.exception.DNSException as exc:
        module.fail_json(msg=f"not a DNS name: {p['name']!r} ({exc})")
        return

    if p["state"] == "query":
        deadline = time.monotonic() + max(p["wait_seconds"], 0.0)
        while True:
            addresses, ttl, problem = _answer(p["server"], p["port"], name, p["timeout"])
            on_expected = p["address"] is not None and addresses == [p["address"]]
            if on_expected or p["address"] is None or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        module.exit_json(changed=False, addresses=addresses, ttl=ttl, on_expected=on_expected,
                         error=problem)
        return

    addresses, ttl, problem = _answer(p["server"], p["port"], name, p["timeout"])
    if not problem and addresses == [p["address"]] and ttl == p["ttl"]:
        module.exit_json(changed=False, addresses=addresses, ttl=ttl, on_expected=True,
                         acknowledged_at=time.time())
        return
    if module.check_mode:
        module.exit_json(changed=True, addresses=addresses, ttl=ttl, on_expected=False)
        return
    try:
        zone = dns.name.from_text(p["zone"])
        keyname = dns.name.from_text(p["tsig_name"])
        keyring = dns.tsigkeyring.from_text(
            {keyname.to_text(): (p["tsig_algorithm"], p["tsig_secret"])})
        update = dns.update.UpdateMessage(zone, keyring=keyring, keyname=keyname,
                                          keyalgorithm=p["tsig_algorithm"])
        update.replace(name, p["ttl"], "A", p["address"])
        response = dns.query.tcp(update, p["server"], port=p["port"], timeout=p["timeout"])
        acknowledged_at = time.time()
    except (dns.exception.DNSException, OSError, ValueError) as exc:
        # (no message of these carries the secret: dnspython names the key, never its value)
        module.fail_json(msg=f"DNS update of {name} to {p['address']} at {p['server']}:{p['port']}"
                             f" failed: {type(exc).__name__}: {exc}", addresses=addresses)
        return
    rcode = response.rcode()
    if rcode != dns.rcode.NOERROR:
        module.fail_json(msg=f"DNS update of {name} to {p['address']} refused by "
                             f"{p['server']}:{p['port']}: {dns.rcode.to_text(rcode)}",
                         addresses=addresses)
        return
    module.exit_json(changed=True, addresses=addresses, ttl=ttl, on_expected=True,
                     acknowledged_at=acknowledged_at)


if __name__ == "__main__":
    main()
