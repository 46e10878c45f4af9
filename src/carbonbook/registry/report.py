"""Registry reports for people: an account's audit trail, a serial range's holders, an account's
statement and a cancellation certificate, as lines of text (``carbonbook registry ...``).

Each reads the registry and changes nothing. Costs: the account audit and the statement are
O(journal) and O(blocks); the serial audit replays the journal (see
:mod:`carbonbook.registry._audit`).
"""

from __future__ import annotations

from itertools import groupby

from carbonbook.registry.base import BlockState, Entry, Registry

__all__ = ["account_audit", "certificate_text", "serial_audit", "statement"]


def _row(e: Entry) -> str:
    moved = []
    if e.qty:
        moved.append(f"{e.qty} {e.unit or ''}".rstrip())
    if e.amount:
        moved.append(f"{e.amount} {e.currency or ''}".rstrip())
    parts = [f"txid {e.txid}", f"day {e.day}", e.kind, e.account or "-"]
    if e.counterparty:
        parts.append(f"-> {e.counterparty}")
    parts += moved
    parts.append(f"actor {e.actor or '-'}")
    if e.approver:
        parts.append(f"approver {e.approver}")
    if e.ref is not None:
        parts.append(f"ref {e.ref}")
    if e.detail:
        parts.append(f"({e.detail})")
    return " ".join(parts)


def account_audit(reg: Registry, account: str) -> list[str]:
    """Every journal row by or towards ``account`` (the account must exist): txid, business day,
    kind, the other account, what moved, actor, approver, reference and detail."""
    reg.account(account)
    return [_row(e) for e in reg.journal() if account in (e.account, e.counterparty)]


def serial_audit(reg: Registry, origin: str, start: int, end: int) -> list[str]:
    """Who held serials ``start``..``end`` of ``origin`` and when, oldest first."""
    return [f"{h.origin} {h.start}-{h.end} {h.unit}: {h.holder} ({h.state}) from txid {h.txid} day {h.day}, "
            f"{h.kind}, actor {h.actor or '-'}" + (f", approver {h.approver}" if h.approver else "")
            for h in reg.serial_history(origin, start, end)]


def statement(reg: Registry, account: str) -> list[str]:
    """``account``'s active holdings by unit, vintage, project and serial block, with a total per
    unit and vintage and how much of each unit is free (not held for an order or a pending
    transfer)."""
    acc = reg.account(account)
    head = f"account {acc.id}: {acc.kind}, {acc.status}" + (f", operator of {acc.scheme}" if acc.scheme else "")
    lines = [head]
    blocks = sorted((b for b in reg.blocks(account) if b.state is BlockState.ACTIVE),
                    key=lambda b: (str(b.unit), b.period, b.project or "", b.origin, b.start))
    for unit, of_unit in groupby(blocks, key=lambda b: str(b.unit)):
        held = list(of_unit)
        lines.append(f"{unit}: {sum(b.qty for b in held)} held, {reg.available(account, held[0].unit)} free")
        for (period, project), group in groupby(held, key=lambda b: (b.period, b.project)):
            part = list(group)
            lines.append(f"  vintage {period}" + (f", project {project}" if project else "")
                         + f": {sum(b.qty for b in part)}")
            lines += [f"    {b.origin} {b.start}-{b.end} ({b.qty})"
                      + (f", expires {b.expiry}" if b.expiry else "") for b in part]
    if not blocks:
        lines.append("no units held")
    return lines


def certificate_text(reg: Registry, certificate: int) -> list[str] | None:
    """The cancellation certificate ``certificate`` as lines (None: there is none)."""
    c = reg.certificate(certificate)
    if c is None:
        return None
    return [f"cancellation certificate {c.id}",
            f"  {c.qty} {c.unit} of {c.account}, cancelled into {c.into} on business day {c.day}"
            + (f" by {c.actor}" if c.actor else ""),
            "  serials " + ", ".join(f"{s.origin} {s.start}-{s.end}" for s in c.serials),
            f"  beneficiary {c.beneficiary or '-'}",
            f"  purpose {c.purpose or '-'}"]
