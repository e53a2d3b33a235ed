"""Browsing commands: versions, ls (a tree), diff, find, check-session."""
from __future__ import annotations

import sys

import click

from .. import catalog, findindex, hashing, sessions
from ..errors import EXIT_DAMAGE, UsageError
from ..snapshots import path_selected
from . import cli
from .common import complete_project, emit_json, human, json_option, open_store, run, store_option
from .render import entry_detail, render_session_check, render_tree, when


@cli.command()
@click.argument("project", shell_complete=complete_project)
@store_option
@json_option
@run
def versions(project, store_path, as_json):
    """List a project's versions: dates, sizes and messages.

    \b
    Example:
      archive versions "Paper Boats"
    """
    with open_store(store_path) as st:
        rows = [{"version": n, "time": r.get("time"), "files": r.get("files"),
                 "bytes": r.get("bytes"), "message": r.get("message", ""),
                 "host": r.get("host"), "user": r.get("user"), "source": r.get("source"),
                 "skipped": len(r.get("skipped", []))}
                for n, r in st.versions(project)]
    if as_json:
        emit_json({"project": project, "versions": rows})
        return
    click.echo(f"{project}: {len(rows)} version{'s' if len(rows) != 1 else ''}")
    for r in rows:
        msg = f"  “{r['message']}”" if r["message"] else ""
        who = f"  {r['user']}@{r['host']}" if r.get("user") else (f"  {r['host']}" if r.get("host") else "")
        skipped = f"  ({r['skipped']} skipped)" if r["skipped"] else ""
        click.echo(f"  v{r['version']:<4} {when(r['time'])}  {r['files']:>6} files  "
                   f"{human(r['bytes'] or 0):>9}{msg}{skipped}{who}")


@cli.command(name="ls")
@click.argument("project", shell_complete=complete_project)
@click.argument("paths", nargs=-1)
@store_option
@click.option("--version", "-V", "version", type=int, help="Version number (default: latest).")
@click.option("--checksums", is_flag=True,
              help="Print each file's digest and path, one per line, as xxhsum -H2 prints them "
                   "(b3sum for versions archived before XXH128 digests): a list that "
                   "'xxhsum -c' checks in a restored folder.")
@json_option
@run
def ls_cmd(project, paths, store_path, version, checksums, as_json):
    """Show a version's files as a tree with sizes and audio details.

    Give PATHS to show only those files or folders. With --checksums, a checksum list instead:
    anyone can then check a restore without archivestore.

    \b
    Example:
      archive ls "Paper Boats"
      archive ls "Paper Boats" --version 2 "Audio Files"
      archive ls "Paper Boats" --checksums > /tmp/pb.xxh128
      archive restore "Paper Boats" --to /tmp/pb
      cd /tmp/pb && xxhsum -c /tmp/pb.xxh128
    """
    if checksums and as_json:
        raise UsageError("--checksums prints a checksum list, not JSON: give one or the other")
    with open_store(store_path) as st:
        n, rec = st.version(project, version)
        entries = [e for e in st.iter_tree(rec) if not paths or path_selected(e["path"], paths)]
    if checksums:
        _print_checksums(entries)
        return
    if as_json:
        emit_json({"project": project, "version": n,
                   "entries": [{k: v for k, v in e.items() if k != "chunks"} for e in entries]})
        return
    files = [e for e in entries if e["type"] == "file"]
    click.echo(f"{project} — version {n} ({when(rec.get('time'))}), {len(files)} files, "
               f"{human(sum(e['size'] for e in files))}")
    for line in render_tree(entries, _term_width()):
        click.echo(line)


def _print_checksums(entries: list[dict]) -> None:
    """`DIGEST  PATH` per file, the format `xxhsum -c` (and `b3sum --check`) read. A path with a
    line break cannot be written in it: such files are named on stderr instead."""
    left = []
    for e in entries:
        if e["type"] != "file":
            continue
        if "\n" in e["path"] or "\r" in e["path"]:
            left.append(e["path"])
            continue
        click.echo(f"{e['digest']}  {e['path']}")
    for p in left:
        click.echo(f"archive: not in the list (a line break in its name): {p!r}", err=True)


def _term_width() -> int:
    import shutil
    return shutil.get_terminal_size((100, 24)).columns


def diff_versions(old: list[dict], new: list[dict]) -> dict:
    """Added, removed, changed and renamed entries between two trees (renamed = same bytes,
    different path; a file whose path and bytes are unchanged is not listed). Bytes compare by
    digest, or by chunk list between versions of different digests (hashing.same_content)."""
    a = {e["path"]: e for e in old}
    b = {e["path"]: e for e in new}
    added = [b[p] for p in b if p not in a]
    removed = [a[p] for p in a if p not in b]
    changed = []
    for p in a.keys() & b.keys():
        x, y = a[p], b[p]
        if x["type"] != y["type"] or (x["type"] == "file" and not hashing.same_content(x, y)) \
                or (x["type"] == "symlink" and x.get("target") != y.get("target")):
            changed.append((x, y))
    changed.sort(key=lambda xy: xy[0]["path"])
    # added files by content: the chunk list is the same key whatever each version's digest
    by_content: dict[tuple, list[dict]] = {}
    for e in added:
        if e["type"] == "file":
            by_content.setdefault((e.get("size"), hashing.content_key(e)), []).append(e)
    renamed = []
    gone = set()
    for e in removed:
        if e["type"] != "file":
            continue
        key = (e.get("size"), hashing.content_key(e))
        if by_content.get(key):
            to = by_content[key].pop(0)
            renamed.append((e, to))
            gone.add(e["path"])
            gone.add(to["path"])
    added = [e for e in added if e["path"] not in gone]
    removed = [e for e in removed if e["path"] not in gone]
    unchanged = sum(1 for p in a.keys() & b.keys() if a[p]["type"] == "file") - \
        sum(1 for x, _y in changed if x["type"] == "file")

    def brief(e: dict) -> dict:
        return {"path": e["path"], "type": e["type"], "size": e.get("size"),
                "digest": e.get("digest")}
    return {"added": [brief(e) for e in added], "removed": [brief(e) for e in removed],
            "changed": [{"path": x["path"], "type": y["type"], "old_size": x.get("size"),
                         "new_size": y.get("size"), "old_type": x["type"]} for x, y in changed],
            "renamed": [{"from": x["path"], "to": y["path"], "size": x.get("size"),
                         "digest": x.get("digest")} for x, y in renamed],
            "unchanged_files": unchanged}


@cli.command()
@click.argument("project", shell_complete=complete_project)
@click.argument("a", type=int, metavar="A")
@click.argument("b", type=int, metavar="[B]", required=False)
@store_option
@json_option
@run
def diff(project, a, b, store_path, as_json):
    """Show what changed between two versions of a project.

    Compares version A with version B (default: the latest).

    Lists files added, removed, changed (different bytes) and renamed (same bytes, new path).

    \b
    Example:
      archive diff "Paper Boats" 1 2
    """
    with open_store(store_path) as st:
        na, ra = st.version(project, a)
        nb, rb = st.version(project, b)
        # a tree's chunk lists can be millions of ids: each file keeps their 32-byte key
        strip = lambda es: [{k: v for k, v in e.items() if k != "chunks"}  # noqa: E731
                            | ({"content": hashing.content_key(e)} if e["type"] == "file" else {})
                            for e in es]
        out = diff_versions(strip(st.iter_tree(ra)), strip(st.iter_tree(rb)))
    out = {"project": project, "from": na, "to": nb, **out}
    if as_json:
        emit_json(out)
        return
    click.echo(f"{project}: version {na} → version {nb}")
    for e in out["added"]:
        click.echo(f"  + {e['path']}{'/' if e['type'] == 'dir' else ''}"
                   + (f"  ({human(e['size'])})" if e["type"] == "file" else ""))
    for e in out["removed"]:
        click.echo(f"  - {e['path']}{'/' if e['type'] == 'dir' else ''}"
                   + (f"  ({human(e['size'])})" if e["type"] == "file" else ""))
    for e in out["changed"]:
        if e["old_type"] != e["type"]:
            click.echo(f"  ~ {e['path']}  ({e['old_type']} → {e['type']})")
        elif e["type"] == "file":
            click.echo(f"  ~ {e['path']}  ({human(e['old_size'])} → {human(e['new_size'])})")
        else:
            click.echo(f"  ~ {e['path']}  (link target changed)")
    for e in out["renamed"]:
        click.echo(f"  → {e['from']}  ⇒  {e['to']}")
    parts = [f"{len(out[k])} {k}" for k in ("added", "removed", "changed", "renamed") if out[k]]
    click.echo(("  " + ", ".join(parts) if parts else "  no differences")
               + f"; {out['unchanged_files']} files unchanged")


@cli.command()
@click.argument("pattern", required=False)
@store_option
@click.option("--desc", "-d", metavar="TEXT",
              help="Match TEXT in the BWF description or originator (case-insensitive).")
@click.option("--project", "-p", metavar="NAME", help="Search only this project.")
@click.option("--limit", "-n", type=int, default=500, show_default=True,
              help="Show at most this many files.")
@json_option
@run
def find(pattern, store_path, desc, project, limit, as_json):
    """Find files by name or BWF description in every project and version.

    Answers from the index alone, without reading the archived data.

    PATTERN is a case-insensitive glob matched against the file name and the full path
    (a PATTERN without * ? [ matches anywhere in the name). The same bytes at the same path in
    several versions are shown once, with the versions that hold them.

    \b
    Example:
      archive find "*.wav"
      archive find "kick*" --project "Paper Boats"
      archive find --desc "Room A"
    """
    if not pattern and not desc:
        raise UsageError("give a PATTERN, --desc TEXT or both (e.g. archive find '*kick*')")
    with open_store(store_path) as st:
        findindex.ensure(st.index)  # an index of an older archivestore: build the blocks once
        finder = findindex.Finder(st.index, pattern, desc, project, limit)
        projects = 0
        if as_json:
            # streamed one project at a time, byte for byte what emit_json would print
            click.echo(b'{"matches": [', nl=False)
            sep = b""
            item = findindex.found_json
            for name, batch in finder:
                pj = findindex.json_text(name).encode("utf-8", "surrogatepass")
                click.echo(sep, nl=False)
                click.echo(b", ".join([item(pj, f) for f in batch]), nl=False)
                sep = b", "
        else:
            for name, batch in finder:
                projects += 1
                click.echo("\n".join(_find_line(name, f) for f in batch))
        uncatalogued = findindex.uncatalogued(st.index, project or None)
    truncated = finder.truncated
    if as_json:
        click.echo(b'], "truncated": %s, "uncatalogued_versions": %d}'
                   % (b"true" if truncated else b"false", uncatalogued))
        return
    found = finder.count
    click.echo(f"{found} file{'s' if found != 1 else ''} found"
               + (f" in {projects} project{'s' if projects != 1 else ''}" if found else "")
               + (f" (showing the first {limit}; use --limit)" if truncated else ""), err=True)
    if uncatalogued:
        click.echo(f"note: {uncatalogued} version(s) are not in the file catalog (archived by an "
                   f"older archivestore); `archive fsck --rebuild-index` adds them", err=True)


def _find_line(project: str, f: findindex.Found) -> str:
    """One line of `archive find`'s text output."""
    path, j = findindex.found_record(f)
    extra = f"  {j['format']}" if j["format"] else ""
    if j["description"]:
        extra += f"  “{j['description']}”"
    if j["originator"]:
        extra += f"  ({j['originator']})"
    return f"{project}  {catalog.format_versions(f[2])}  {path}  {human(j['size'])}{extra}"


@cli.command(name="check-session")
@click.argument("target")
@store_option
@click.option("--version", "-V", "version", type=int, help="Version number (default: latest).")
@click.option("--folder", is_flag=True,
              help="TARGET is a project folder on disk (e.g. a restore), not an archived project.")
@json_option
@run
def check_session(target, store_path, version, folder, as_json):
    """Check that a project's sessions find all their media.

    Every media file the sessions refer to must be in the project folder.

    Reads Ardour (.ardour) and REAPER (.rpp) sessions. Media that is missing or lives outside
    the project folder is listed and the exit status is 1. Pro Tools and Logic sessions are
    closed formats: they are named, and audio no readable session mentions is listed instead.

    \b
    Example:
      archive check-session "Paper Boats"              # the latest archived version
      archive check-session "Paper Boats" --version 3
      archive check-session --folder "/Sessions/Paper Boats"   # before ingest or after restore
    """
    if folder:
        import os
        if not os.path.isdir(target):
            raise UsageError(f"{target}: no such folder")
        res = sessions.check_folder(target)
        label = target
    else:
        with open_store(store_path) as st:
            n, rec = st.version(target, version)
            res = sessions.check_tree(st.iter_tree(rec))
        label = f"{target} version {n}"
    if as_json:
        emit_json({"target": label, **res.to_json()})
    else:
        for line in render_session_check(res, label, verbose=True):
            click.echo(line)
    if not res.ok:
        sys.exit(EXIT_DAMAGE)


__all__ = ["diff_versions", "entry_detail"]
