"""Copies commands: replicate, store add/list/remove/primary, status, key export."""
from __future__ import annotations

import os
import sys

import click

from .. import copies as copies_mod
from ..encryption import (EncryptedBackend, key_file_text, new_encryption, unlock_key,
                          write_key_file)
from ..errors import EXIT_DAMAGE, StoreNotFound, UsageError
from ..replicate import Replicator, open_dest
from ..store import Store
from . import cli
from .common import Progress, emit_json, human, json_option, open_store, quiet_option, run, store_option


def _passphrase(var: str | None) -> str | None:
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        raise UsageError(f"environment variable {var} is not set (it should hold the passphrase)")
    return value


def resolve_url(primary: Store | None, name_or_url: str) -> str:
    """A copy's address from its recorded name, or the address itself."""
    if primary is not None:
        c = copies_mod.find_copy(primary, name_or_url)
        if c is not None:
            return c["url"]
    return name_or_url


def unlock_store(st: Store, key_file: str | None, passphrase_env: str | None) -> None:
    """Give an encrypted store its key from the options (the environment was tried at open)."""
    b = st.backend
    if not isinstance(b, EncryptedBackend):
        if key_file or passphrase_env:
            raise UsageError(f"{st.url} is not encrypted; --key-file/--passphrase-env do not apply")
        return
    if key_file or passphrase_env:
        b.unlock(unlock_key(b.block, key_file, _passphrase(passphrase_env)))
    elif not b.unlocked:
        unlock_key(b.block)  # raises the usage error naming the options
    st.catch_up()


def key_options(f):
    f = click.option("--passphrase-env", metavar="VAR",
                     help="Name of an environment variable holding the passphrase.")(f)
    return click.option("--key-file", type=click.Path(dir_okay=False), metavar="PATH",
                        help="Key file (created with a new random key by --init --encrypt "
                             "if it does not exist).")(f)


@cli.command()
@store_option
@click.option("--to", "dest", required=True, metavar="DEST",
              help="Destination store: a folder, rclone:REMOTE:path, or a copy's name.")
@click.option("--init", "init", is_flag=True,
              help="Create DEST as a new replica if it does not exist (same chunker parameters).")
@click.option("--encrypt", is_flag=True, help="With --init: encrypt the new replica.")
@key_options
@json_option
@quiet_option
@run
def replicate(store_path, dest, init, encrypt, key_file, passphrase_env, as_json, quiet, verbose):
    """Copy to another store everything it lacks: verified, resumable, never deleting.

    A project or version removed here stays in DEST. DEST must already be a store (an
    unmounted drive is an error), unless --init creates it.

    \b
    Examples:
      archive replicate --to /mnt/nas/archive-replica --init
      archive replicate --to rclone:offsite:studio-archive --init --encrypt --key-file ~/archive.key
      archive replicate --to offsite            # a copy recorded with: archive store add
    """
    if encrypt and not init:
        raise UsageError("--encrypt applies when creating a replica (with --init); an existing "
                         "replica keeps the encryption it was created with")
    warning = None
    with open_store(store_path) as src:
        url = resolve_url(src, dest)
        block = master = None
        if encrypt:
            try:
                Store.open(url).close()
            except StoreNotFound:
                pass
            else:
                raise UsageError(f"{url} already holds a store; --encrypt only applies to a new one")
            block, master = new_encryption(key_file, _passphrase(passphrase_env))
        dst, created = open_dest(url, src, init, block)
        try:
            if created and master is not None:
                dst.backend.unlock(master)
                warning = (f"Without this key the offsite copy is unreadable. Export it now: "
                           f"archive key export --store {url} "
                           + (f"--key-file {key_file}" if key_file else f"--passphrase-env {passphrase_env}")
                           + " --out SAFE_PLACE")
                if not as_json:
                    click.echo(f"archive: {warning}", err=True)
            else:
                unlock_store(dst, key_file, passphrase_env)
            prog = Progress(None, "replicate", enabled=not (quiet or as_json))
            rep = Replicator(src, dst, progress=prog)
            prog.total = sum(size for _n, size in rep.plan())
            try:
                res = rep.run()
            finally:
                prog.close()
            res.created = created
            if res.ok:
                copies_mod.record_state(dst, last_replicate=copies_mod._now(),
                                        replicated_from=src.config["store_id"])
        finally:
            dst.close()
    out = res.to_json()
    if warning:
        out["warning"] = warning
    if as_json:
        emit_json(out)
    else:
        click.echo(f"{'Created and replicated' if created else 'Replicated'} to {url}: "
                   f"{res.packs_copied} packs, {human(res.bytes_copied)} copied and verified "
                   f"({res.packs_present} already there"
                   + (f", {res.packs_resumed} resumed" if res.packs_resumed else "")
                   + f"; {human(res.bytes_copied / max(res.seconds, 1e-9))}/s)")
        for v in res.versions_added:
            click.echo(f"  + {v['project']} v{v['version']}")
        for c in res.conflicts:
            click.echo(f"  CONFLICT: {c['project']} v{c['version']}: the destination already has "
                       f"a different version {c['version']} (snapshot {str(c['dest_snapshot'])[:16]}); "
                       f"kept it, did not list snapshot {c['snapshot'][:16]}", err=True)
        for d in res.damaged:
            click.echo(f"  NOT copied ({d['where']} pack {d['pack']}"
                       + (f" chunk {d['chunk'][:16]}" if d.get("chunk") else "")
                       + f"): {d['detail']}", err=True)
    if not res.ok:
        sys.exit(EXIT_DAMAGE)


@cli.group()
def store() -> None:
    """Record the copies of this store (for `archive status` and `replicate --to NAME`).

    \b
    Example:
      archive store add nas /Volumes/NAS/archive --media nas
      archive store add b2 rclone:b2:studio-archive --media remote --offsite
      archive store list
    """


@store.command("add")
@click.argument("name")
@click.argument("path")
@store_option
@click.option("--media", type=click.Choice(copies_mod.MEDIA), required=True,
              help="What holds the copy: local disk, NAS, or a remote service.")
@click.option("--offsite", is_flag=True, help="The copy is kept at another site.")
@json_option
@run
def store_add(name, path, store_path, media, offsite, as_json):
    """Record a known copy NAME at PATH (a folder or rclone:REMOTE:path).

    \b
    Example:
      archive store add nas /mnt/nas/archive --media nas
      archive store add cloud rclone:b2:studio-archive --media remote --offsite
    """
    with open_store(store_path) as st:
        entry = copies_mod.add_copy(st, name, path, media, offsite)
    if as_json:
        emit_json(entry)
    else:
        click.echo(f"Recorded copy {name}: {entry['url']} ({media}{', offsite' if offsite else ''})")


@store.command("remove")
@click.argument("name")
@store_option
@run
def store_remove(name, store_path):
    """Forget a recorded copy (its data is not touched)."""
    with open_store(store_path) as st:
        copies_mod.remove_copy(st, name)
    click.echo(f"Forgot copy {name}")


@store.command("primary")
@store_option
@click.option("--media", type=click.Choice(copies_mod.MEDIA), required=True)
@click.option("--offsite", is_flag=True)
@run
def store_primary(store_path, media, offsite):
    """Say what media holds this (primary) store (default: local, onsite)."""
    with open_store(store_path) as st:
        copies_mod.set_primary(st, media, offsite)
    click.echo(f"Primary store: {media}{', offsite' if offsite else ''}")


@store.command("list")
@store_option
@json_option
@run
def store_list(store_path, as_json):
    """List the recorded copies."""
    with open_store(store_path) as st:
        data = copies_mod.load_copies(st)
    if as_json:
        emit_json(data)
        return
    click.echo(f"primary  {st.url}  {data['primary']['media']}")
    for c in data["copies"]:
        click.echo(f"{c['name']}  {c['url']}  {c['media']}{'  offsite' if c['offsite'] else ''}")


@cli.command()
@store_option
@json_option
@run
def status(store_path, as_json):
    """Show, per project, how many copies hold its latest version and whether 3-2-1 holds.

    3-2-1: at least 3 copies (this store counts), on at least 2 media types, 1 offsite.

    \b
    Example:
      archive status --store /Volumes/Archive/store
    """
    with open_store(store_path) as st:
        out = copies_mod.status(st)
    if as_json:
        emit_json(out)
        return
    click.echo("Stores:")
    for s in out["stores"]:
        state = (f"verified {s['last_verified'] or 'never'}, replicated {s['last_replicate'] or 'never'}"
                 if s["reachable"] else f"UNREACHABLE: {s.get('error', '')}")
        if s["reachable"] and s.get("error"):
            state += f"; {s['error']}"
        click.echo(f"  {s['name']:<10} {s['media']:<6}{' offsite' if s['offsite'] else '        '}  "
                   f"{s['url']}  ({state})")
    click.echo("Projects:")
    for p in out["projects"]:
        verdict = "3-2-1 ok" if p["ok"] else "BREAKS 3-2-1: " + "; ".join(p["issues"])
        click.echo(f"  {p['project']} v{p['version']}: {p['copies']} "
                   f"{'copy' if p['copies'] == 1 else 'copies'} "
                   f"({', '.join(p['stores'])}; media {', '.join(p['media'])}) — {verdict}")


@cli.group()
def key() -> None:
    """Encryption keys of encrypted replicas.

    \b
    Example:
      archive key export --store rclone:b2:studio-archive --passphrase-env ARCHIVE_PW --out ~/offsite.key
    """


@key.command("export")
@store_option
@key_options
@click.option("--out", type=click.Path(dir_okay=False), metavar="PATH",
              help="Write a key file here (mode 0600, never overwritten) instead of printing.")
@run
def key_export(store_path, key_file, passphrase_env, out):
    """Print (or write) the key of an encrypted store, for safekeeping.

    The key file works in place of the passphrase: ARCHIVE_KEY_FILE=PATH or --key-file PATH.

    \b
    Example:
      archive key export --store rclone:offsite:archive --passphrase-env ARCHIVE_PW --out /safe/offsite.key
    """
    with open_store(store_path) as st:
        b = st.backend
        if not isinstance(b, EncryptedBackend):
            raise UsageError(f"{st.url} is not encrypted; it has no key")
        if key_file or passphrase_env:
            master = unlock_key(b.block, key_file, _passphrase(passphrase_env))
        elif b.master is not None:
            master = b.master
        else:
            master = unlock_key(b.block)
        sid = st.config["store_id"]
    if out:
        write_key_file(out, master, sid)
        click.echo(f"Key written to {out}. Keep it away from the encrypted copy.")
    else:
        click.echo(key_file_text(master, sid), nl=False)


def heal_from_copies(st: Store, names: tuple[str, ...], read_data: bool, repair: bool, progress):
    """`fsck --read-data --repair --from COPY…`: heal `st` from the named copies."""
    from ..heal import heal
    if not (read_data and repair):
        raise UsageError("--from heals damage: use it with --read-data --repair")
    opened = []
    try:
        for n in names:
            c = Store.open(resolve_url(st, n))
            opened.append(c)
            if c.config["store_id"] == st.config["store_id"]:
                raise UsageError(f"{n} is this store, not a copy of it")
            if isinstance(c.backend, EncryptedBackend):
                unlock_store(c, None, None)
        return heal(st, opened, progress)
    finally:
        for c in opened:
            c.close()
