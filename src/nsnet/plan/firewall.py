"""The firewall part of a plan: ``iptables-restore`` text that turns a namespace's live rules into the desired ones."""

from __future__ import annotations

from nsnet.model import Firewall, own_chain, policy_chain


def restore_text(lab: str, desired: Firewall, live: Firewall, family: int, policies: dict[str, str]) -> str:
    """The ``iptables-restore --noflush`` input that turns ``live`` into ``desired`` for one family.

    ``policies`` are the filter policies to set (already resolved against the
    originals to restore; those of the other family are left out). Empty text
    means nothing to do.
    """
    want: dict[tuple[str, str], list[str]] = {}
    for r in desired.rules:
        if r.family == family:
            want.setdefault((r.table, r.chain), []).append(r.args)
    have: dict[tuple[str, str], list[str]] = {}
    for r in live.rules:
        if r.family == family:
            have.setdefault((r.table, r.chain), []).append(r.args)
    for fam, table, chain in live.chains:
        if fam == family:
            have.setdefault((table, chain), [])
    blocks: dict[str, list[str]] = {}
    for key in sorted(set(want) | set(have)):
        table, chain = key
        own = own_chain(chain)
        jump = f'-m comment --comment "nsnet:{lab}" -j {own}'
        jumped = (family, table, chain) in live.jumps
        lines = blocks.setdefault(table, [])
        if key in want:
            if have.get(key) == want[key] and jumped:
                continue
            lines.append(f":{own} - [0:0]")
            lines += [f"-A {own} {args}" for args in want[key]]
            if not jumped:
                lines.append(f"-I {chain} 1 {jump}")
        else:
            lines.append(f":{own} - [0:0]")
            if jumped:
                lines.append(f"-D {chain} {jump}")
            lines.append(f"-X {own}")
    for name, policy in policies.items():
        fam, builtin = policy_chain(name)
        if fam == family and live.policies.get(name) != policy:
            blocks.setdefault("filter", []).insert(0, f":{builtin} {policy} [0:0]")
    text = ""
    for table, lines in blocks.items():
        if lines:
            text += f"*{table}\n" + "\n".join(lines) + "\nCOMMIT\n"
    return text
