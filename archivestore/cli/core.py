"""Core commands: init, ingest, projects, versions, ls, restore, fsck, stats."""
from __future__ import annotations

import os
import sys

import click

from ..chunking import ChunkParams
from ..errors import EXIT_DAMAGE, UsageError
from ..memory import tune_allocator
from ..snapshots import path_selected, validate_project_name
from ..store import Store
from . import cli
from .common import (Progress, complete_project, emit_json, human, json_option, open_store, quiet_option, run,
                     store_option, tree_size)
from .render import codec_record, ingest_summary, when


@cli.command()
@store_option
@click.option("--chunk-avg", type=int, default=None, metavar="BYTES",
              help="Average chunk size (power of two; min = avg/4, max = avg*4). Default 1 MiB.")
@json_option
@run
def init(store_path, chunk_avg, as_json):
    """Create a new, empty store.

    \b
    Example:
      archive init --store /Volumes/Archive/store
    """
    if not store_path:
        raise UsageError("no store given: pass --store PATH or set ARCHIVE_STORE")
    params = None
    if chunk_avg:
        params = ChunkParams(chunk_avg // 4, chunk_avg, chunk_avg * 4)
    with Store.init(store_path, params) as st:
        out = {"store": st.url, "store_id": st.config["store_id"],
               "chunker": st.config["chunker"]}
    if as_json:
        emit_json(out)
    else:
        click.echo(f"Created an empty store at {out['store']}")


@cli.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(file_okay=True, dir_okay=True))
@store_option
@click.option("--project", "-p", metavar="NAME",
              help="Project name (default: the folder's name; only with one folder).")
@click.option("--message", "-m", metavar="TEXT", help="A note kept with this version.")
@click.option("--strict/--no-strict", default=False,
              help="Archive nothing if any file must be skipped or a session refers to media "
                   "that is missing or outside the folder.")
@click.option("--no-audio-codec", is_flag=True,
              help="Store PCM with zstd instead of the lossless audio codec (faster, larger).")
@click.option("--no-verify-codec", is_flag=True,
              help="Skip decoding audio-codec output at ingest (faster; reads still verify).")
@json_option
@quiet_option
@run
def ingest(folders, store_path, project, message, strict, no_verify_codec, no_audio_codec, as_json,
           quiet, verbose):
    """Archive project folders, each as a new version of its project.

    Every ingest of the same project adds version 1, 2, 3, …; unchanged data is stored once.
    Several folders in one command (a whole delivery) are archived in one run, each read
    while the one before it is committed; each becomes its own project version as soon as it
    is complete. With --json, one JSON object per folder, one per line.

    \b
    Example:
      archive ingest "/Sessions/Paper Boats" --store /Volumes/Archive/store
      archive ingest ./mix --project "Paper Boats" -m "revised mix"
      archive ingest /Deliveries/2026-11/*/
    """
    from ..ingest import Ingester
    if project and len(folders) > 1:
        raise UsageError("--project names one folder's project; with several folders each "
                         "project is named after its folder")
    srcs = [Ingester.check_source(f) for f in folders]  # all checked before the first is archived
    names = [validate_project_name(project or src.name) for src in srcs]
    seen: dict[str, str] = {}
    for f, name in zip(folders, names):
        if name in seen:
            raise UsageError(f"{seen[name]} and {f} would both be project {name!r}; "
                             f"ingest them in separate commands")
        seen[name] = f
    many = len(folders) > 1
    with open_store(store_path) as st:
        prog = Progress(lambda: sum(tree_size(f) for f in folders),
                        f"ingest {len(folders)} projects" if many else "ingest",
                        enabled=not (quiet or as_json), verbose=verbose, by_project=many)
        ingester = Ingester(st, progress=prog, strict=strict, verify_codec=not no_verify_codec,
                            audio_codec=not no_audio_codec)
        try:
            for res in ingester.ingest_many(
                    (src, name, message) for src, name in zip(srcs, names)):
                if as_json:
                    emit_json(res.to_json())
                    continue
                prog.echo(*ingest_summary(res, verbose))
        finally:
            prog.close()


@cli.command()
@store_option
@json_option
@run
def projects(store_path, as_json):
    """List projects with their latest version.

    \b
    Example:
      archive projects --store /Volumes/Archive/store
    """
    with open_store(store_path) as st:
        rows = []
        for p in st.projects():
            n, rec = st.version(p)
            rows.append({"project": p, "versions": len(st.versions(p)), "latest": n,
                         "time": rec.get("time"), "bytes": rec.get("bytes", 0)})
    if as_json:
        emit_json({"projects": rows})
        return
    if not rows:
        click.echo("No projects yet (archive ingest FOLDER adds one).")
    for r in rows:
        click.echo(f"{r['project']}  v{r['latest']} of {r['versions']}  {human(r['bytes'])}  "
                   f"{when(r['time'])}")


@cli.command()
@click.argument("project", required=False, shell_complete=complete_project)
@click.argument("paths", nargs=-1)
@store_option
@click.option("--to", "target", required=True, type=click.Path(), help="Folder to restore into.")
@click.option("--version", "-V", "version", type=int, help="Version number (default: latest).")
@click.option("--all", "all_projects", is_flag=True,
              help="Restore the latest version of every project, each into TARGET/<project>.")
@click.option("--overwrite", is_flag=True, help="Replace files that already exist in the target.")
@json_option
@quiet_option
@run
def restore(project, paths, store_path, target, version, all_projects, overwrite, as_json, quiet,
            verbose):
    """Restore a version of a project, verified byte for byte.

    Give PATHS to restore only those files or folders. With --all, every project's latest
    version is restored, each into its own folder under TARGET (with --json, one object per
    project, one per line).

    \b
    Example:
      archive restore "Paper Boats" --to /tmp/pb
      archive restore "Paper Boats" --version 1 --to /tmp/pb "Audio Files/Kick.wav"
      archive restore --all --to /Volumes/Restore
    """
    if all_projects and (project or version is not None):
        raise UsageError("--all restores the latest version of every project; "
                         "give no PROJECT, PATHS or --version with it")
    if not all_projects and not project:
        raise UsageError("which project? Give its name (archive projects lists them) or --all")
    tune_allocator()
    with open_store(store_path) as st:
        if all_projects:
            jobs = [(p, None, (), os.path.join(target, validate_project_name(p)))
                    for p in st.projects()]
            if not jobs:
                raise UsageError("the store holds no projects yet")
        else:
            jobs = [(project, version, paths, target)]
        ok = _restore_jobs(st, jobs, overwrite, as_json, quiet, verbose)
    if not ok:
        sys.exit(EXIT_DAMAGE)


def _restore_jobs(st, jobs, overwrite, as_json, quiet, verbose) -> bool:
    """Restore (project, version, paths, target) jobs in one run, reporting each version as it
    is done; False if any file failed verification."""
    from ..restore import Restorer
    many = len(jobs) > 1
    recs = [st.version(p, v) for p, v, _sel, _dest in jobs]
    total = sum(rec.get("bytes") or 0 for _n, rec in recs)
    if not many and jobs[0][2]:
        paths, rec = jobs[0][2], recs[0][1]
        # the selection's bytes take a walk of the version's tree: only for a bar on screen
        total = lambda: sum(e.get("size", 0) for e in st.iter_tree(rec)  # noqa: E731
                            if e["type"] == "file" and path_selected(e["path"], paths))
    prog = Progress(total, f"restore {len(jobs)} projects" if many else "restore",
                    enabled=not (quiet or as_json), verbose=verbose, by_project=many)
    ok = True
    try:
        run = Restorer(st, progress=prog).restore_many(
            [(p, dest, n, sel) for (p, _v, sel, dest), (n, _rec) in zip(jobs, recs)], overwrite)
        for res, (_p, _v, _sel, target) in zip(run, jobs):
            ok &= res.ok
            if as_json:
                emit_json(res.to_json())
                continue
            prog.echo([f"{res.project}: version {res.version} restored to {target} — "
                       f"{res.files} files, {human(res.bytes)}, all verified "
                       f"({res.seconds:.1f} s, {human(res.bytes / max(res.seconds, 1e-9))}/s)"
                       if res.ok else
                       f"{res.project}: version {res.version}: {res.files} files restored, "
                       f"{len(res.failed)} FAILED verification:"],
                      [f"  NOT restored: {f['path']}: {f['error']}" for f in res.failed])
    finally:
        prog.close()
    return ok


@cli.command()
@store_option
@click.option("--read-data", is_flag=True, help="Also read, decode and re-hash every stored byte.")
@click.option("--rebuild-index", is_flag=True, help="Rebuild the index from the packs first.")
@click.option("--repair", is_flag=True,
              help="Clean up leftovers of interrupted ingests and index complete packs.")
@click.option("--from", "heal_from", multiple=True, metavar="COPY",
              help="With --read-data --repair: replace damaged or missing chunks with verified "
                   "copies from this replica (folder, rclone:REMOTE:path or copy name; repeatable).")
@json_option
@quiet_option
@run
def fsck(store_path, read_data, rebuild_index, repair, heal_from, as_json, quiet, verbose):
    """Check the store's integrity and name every file that damage affects.

    Exit status 1 means damage was found.

    \b
    Example:
      archive fsck                 # structure: index, packs, manifests
      archive fsck --read-data     # every byte (weekly)
    """
    from ..check import Checker
    if read_data:
        tune_allocator()
    with open_store(store_path, fresh_index=rebuild_index) as st:
        rebuilt = None
        if rebuild_index:
            with Progress(sum(sz for _n, sz in st.list_pack_files()), "rebuild index",
                          enabled=not (quiet or as_json), verbose=verbose) as rp:
                rebuilt = st.rebuild_index(lambda name, size: rp({"pack": name, "bytes": size}))
        total = st.index.stats()["bytes_stored"]
        prog = Progress(total, "fsck --read-data" if read_data else "fsck",
                        enabled=not (quiet or as_json), verbose=verbose)
        healed = None
        try:
            if heal_from:
                from .copies import heal_from_copies
                healed = heal_from_copies(st, heal_from, read_data, repair, prog)
                res = healed.check
            else:
                res = Checker(st, progress=prog).check(read_data=read_data, repair=repair)
        finally:
            prog.close()
        if read_data and res.ok:
            from ..copies import _now, record_state
            try:
                record_state(st, last_verified=_now())
            except OSError:  # informational only: a full disk must not fail a sound check
                pass
    out = healed.to_json() if healed else res.to_json()
    if rebuilt is not None:
        out["rebuilt_index"] = rebuilt
    if as_json:
        emit_json(out)
    else:
        if rebuilt is not None:
            click.echo(f"Index rebuilt from {rebuilt['packs']} packs ({rebuilt['versions']} versions).")
        what = "all data read and verified" if read_data else "structure checked"
        click.echo(f"{'OK' if res.ok else 'DAMAGE FOUND'}: {res.packs_checked} packs, "
                   f"{res.versions_checked} versions, {what}"
                   + (f", {res.chunks_checked} chunks / {human(res.bytes_checked)}" if read_data else ""))
        for p in res.problems:
            where = f" pack {p.pack}" if p.pack else ""
            where += f" chunk {p.chunk[:16]}" if p.chunk else ""
            click.echo(f"  {p.kind}:{where}: {p.detail}")
            for a in p.affected[:20]:
                click.echo(f"    affects {a['project']} v{a['version']}: {a['path']}")
            if len(p.affected) > 20:
                click.echo(f"    … and {len(p.affected) - 20} more")
        for r in res.reclaimable:
            click.echo(f"  reclaimable: {r['path']} ({human(r['bytes'])}): {r['reason']}")
        for r in res.repaired:
            click.echo(f"  repaired: {r}")
        if healed is not None:
            click.echo(f"Healed {len(healed.healed)} chunks from copies"
                       + (f"; {len(healed.unavailable)} held by no copy (lost)" if healed.unavailable else ""))
            for h in healed.healed[:50]:
                click.echo(f"  healed chunk {h['chunk'][:16]} ({human(h['bytes'])}) from {h['from']}")
    if not res.ok:
        sys.exit(EXIT_DAMAGE)


@cli.command()
@store_option
@json_option
@run
def stats(store_path, as_json):
    """Show what the store holds and how much dedup and compression saved.

    Also the audio codec's record: how many audio payloads ingest decoded and checked before
    storing them, and whether any failed (a failed one is stored without the codec, so nothing
    is lost). That record, summed over every version, is what a decision to skip the check
    (ingest --no-verify-codec) can rest on.

    \b
    Example:
      archive stats --store /Volumes/Archive/store
    """
    with open_store(store_path) as st:
        s = st.stats()
    if as_json:
        emit_json(s)
        return
    click.echo(f"{s['projects']} projects, {s['versions']} versions, {s['chunks']} chunks in {s['packs']} packs")
    click.echo(f"{human(s['bytes_logical'])} archived, {human(s['bytes_unique'])} unique, "
               f"stored in {human(s['bytes_stored'])}")
    if s["bytes_logical"] and s["bytes_stored"]:
        comp = s["bytes_unique"] - s["bytes_stored"]
        click.echo(f"  dedup saved {human(s['bytes_logical'] - s['bytes_unique'])}, compression "
                   + (f"{human(comp)}" if comp > 0 else "nothing") + ": the store is "
                   f"{s['bytes_logical'] / s['bytes_stored']:.1f}× smaller than what it holds")
    for line in codec_record(s["codec"]):
        click.echo(line)
