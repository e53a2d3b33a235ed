"""Text a person reads: trees, dates, audio details, session-check reports, ingest summaries."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from .common import human

if TYPE_CHECKING:  # the session parsers are imported by the commands that check sessions
    from ..sessions import SessionCheck

# Longest list of skipped files or unreferenced audio printed before "… and N more".
LIST_MAX = 10


def when(iso: str | None) -> str:
    """'2026-11-26T05:00:12Z' → '2026-11-26 05:00 UTC'."""
    if not iso:
        return "?"
    return iso[:16].replace("T", " ") + " UTC" if "T" in iso else iso


def entry_detail(e: dict) -> str:
    """Size and audio details of a file entry: '432.1 kB  BWF 24-bit 48 kHz mono 3.0 s “take 1”'."""
    out = human(e.get("size", 0))
    a = e.get("audio")
    if a:
        from ..catalog import audio_summary
        out += "  " + audio_summary(a)
        if a.get("description"):
            out += f"  “{a['description']}”"
    if e.get("session"):
        s = e["session"]
        out += f"  [{s.get('format')} session, {len(s.get('media', []))} media]"
    return out


class _Node:
    __slots__ = ("name", "entry", "children", "size")

    def __init__(self, name: str) -> None:
        self.name = name
        self.entry: dict | None = None
        self.children: dict[str, _Node] = {}
        self.size = 0


def render_tree(entries: list[dict], width: int = 100) -> list[str]:
    """Entries (any order, parents optional) as an indented tree with folder totals."""
    root = _Node("")
    for e in entries:
        node = root
        for part in e["path"].split("/"):
            node = node.children.setdefault(part, _Node(part))
        node.entry = e
    _sizes(root)
    rows: list[tuple[str, str]] = []

    def walk(node: _Node, prefix: str) -> None:
        kids = sorted(node.children.values(), key=lambda n: n.name.casefold())
        for i, k in enumerate(kids):
            last = i == len(kids) - 1
            e = k.entry or {"type": "dir"}
            branch = prefix + ("└── " if last else "├── ")
            if e["type"] == "dir" or k.children:
                rows.append((branch + k.name + "/", human(k.size)))
                walk(k, prefix + ("    " if last else "│   "))
            elif e["type"] == "symlink":
                rows.append((branch + f"{k.name} -> {e.get('target', '')}", ""))
            else:
                rows.append((branch + k.name, entry_detail(e)))
    walk(root, "")
    col = min(max((len(a) for a, b in rows if b), default=0), max(24, width // 2))
    out = []
    for name, detail in rows:
        if not detail:  # symlinks: nothing to align
            out.append(name)
            continue
        if len(name) > col:
            name = name[:col - 1] + "…"
        out.append(f"{name:<{col}}  {detail}".rstrip())
    return out


def _sizes(node: _Node) -> int:
    total = node.entry.get("size", 0) if node.entry and node.entry.get("type") == "file" else 0
    for k in node.children.values():
        total += _sizes(k)
    node.size = total
    return total


def render_session_check(res: SessionCheck, label: str, verbose: bool = False) -> list[str]:
    """A session check as lines: what was checked, every problem, what could not be checked."""
    lines = []
    where = f"{label}: " if label else ""
    n_media = sum(s["media"] for s in res.sessions)
    if res.sessions:
        names = ", ".join(f"{s['path']} ({s['format']})" for s in res.sessions)
        state = "OK" if res.ok else "PROBLEMS"
        lines.append(f"Session check {state}: {where}{len(res.sessions)} session"
                     f"{'s' if len(res.sessions) != 1 else ''} ({names}), {n_media} media "
                     f"reference{'s' if n_media != 1 else ''}")
    elif res.closed:
        lines.append(f"Session check: {where}no readable session document")
    else:
        lines.append(f"Session check: {where}no session documents found")
    for line in res.summary():
        lines.append("  " + line)
    if res.unreferenced and not (verbose or res.closed):
        lines.append(f"  {len(res.unreferenced)} audio file"
                     f"{'s' if len(res.unreferenced) != 1 else ''} no readable session mentions "
                     f"(-v or archive check-session lists them)")
    elif res.unreferenced:
        lines.append(f"  {len(res.unreferenced)} audio file"
                     f"{'s' if len(res.unreferenced) != 1 else ''} no readable session mentions:")
        for p in res.unreferenced[:LIST_MAX]:
            lines.append(f"    {p}")
        if len(res.unreferenced) > LIST_MAX:
            lines.append(f"    … and {len(res.unreferenced) - LIST_MAX} more")
    return lines


def ingest_summary(res, verbose: int = 0) -> tuple[list[str], list[str]]:
    """(stdout lines, stderr lines) for an ingest result, in words."""
    out = [f"{res.project}: version {res.version} — {res.files} files, "
           f"{human(res.bytes_in)} delivered, {human(res.bytes_new)} new, "
           f"stored in {human(res.bytes_stored)} ({_duration(res.seconds)}, "
           f"{human(res.bytes_in / max(res.seconds, 1e-9))}/s)"]
    words = []
    if res.bytes_in:
        dedup = 1 - res.bytes_new / res.bytes_in
        if dedup >= 0.005:
            words.append(f"{dedup:.0%} of it was already in the store")
    if res.bytes_new and res.bytes_stored:
        ratio = res.bytes_stored / res.bytes_new
        if ratio < 0.995:
            words.append(f"new data compressed to {ratio:.0%} of its size")
    if words:
        out.append("  " + "; ".join(words))
    err = []
    if res.skipped:
        err.append(f"  {len(res.skipped)} entr{'y' if len(res.skipped) == 1 else 'ies'} not archived:")
        err += _listed(res.skipped, verbose, lambda s: f"    skipped {s['path']}: {s['reason']}")
    if res.codec_failed_count:
        n = res.codec_failed_count
        err.append(f"  warning: the audio codec failed its own check on {n} chunk"
                   f"{'' if n == 1 else 's'} (the payload decoded to other bytes).")
        err.append(f"  {'It was' if n == 1 else 'They were'} stored without the codec, so "
                   f"nothing is lost; this is a bug in archivestore: please report it with "
                   f"`archive --version` and the chunk id{'' if n == 1 else 's'}:")
        err += _listed(res.codec_failed, verbose,
                       lambda f: f"    chunk {f['chunk']} ({f['bytes']} bytes, {f['bits']}-bit"
                                 f"{' float' if f['float'] else ''}, {f['channels']} channel"
                                 f"{'' if f['channels'] == 1 else 's'}"
                                 f"{', big-endian' if f['big_endian'] else ''})", total=n)
    if res.session_check is not None:
        lines = render_session_check(res.session_check, "", verbose=bool(verbose))
        (err if not res.session_check.ok else out).extend(lines)
        if not res.session_check.ok:
            err.append("  warning: this version is archived, but its sessions will not open "
                       "complete; use --strict to refuse such ingests")
    return out, err


def codec_record(c: dict) -> list[str]:
    """`archive stats`' lines on the audio codec's own check at ingest, summed over every
    version (`Store.stats()["codec"]`): the record a decision to skip the check rests on."""
    def n(k: int, what: str) -> str:
        return f"{k} {what}{'' if k == 1 else 's'}"
    out = []
    if c["checked"] or c["failed"]:
        failed = (f"{c['failed']} FAILED (stored without the codec, nothing lost; please report "
                  f"it)" if c["failed"] else "none failed")
        out.append(f"  {n(c['checked'], 'audio payload')} decoded and checked at ingest, {failed}")
    if c["unchecked"]:
        out.append(f"  {n(c['unchecked'], 'audio payload')} stored without that check "
                   f"(--no-verify-codec); every read still verifies them")
    if c["versions_unrecorded"]:
        out.append(f"  {n(c['versions_unrecorded'], 'version')} made before archivestore "
                   f"recorded this check")
    return out


def _listed(items: list[dict], verbose: int, line: Callable[[dict], str],
            total: int | None = None) -> list[str]:
    """`line(item)` for the first LIST_MAX items (all of them with -v), then how many more of
    `total` (default: len(items); more when only the first ones were kept)."""
    total = len(items) if total is None else total
    shown = items if verbose else items[:LIST_MAX]
    out = [line(i) for i in shown]
    if len(shown) < total:
        hint = ("" if verbose else " (-v lists all)" if len(items) == total
                else f" (-v lists the first {len(items)})")
        out.append(f"    … and {total - len(shown)} more{hint}")
    return out


def _duration(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    m, s = divmod(int(s), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"
