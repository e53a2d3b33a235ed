"""Session documents: which media a DAW session refers to, and whether the archive holds it.

The most common archive failure is a session whose audio lives outside its folder or no longer
exists. Open formats are parsed here:

- Ardour (`.ardour`, XML): every `<Sources><Source name=…>` that is a file. A bare name lives in
  `interchange/<session name>/audiofiles/` (`midifiles/` for MIDI) next to the document; an
  absolute name is an embedded file used where it lies. (`origin` only records where an
  imported file was copied from; the session does not need it.)
- REAPER (`.rpp`, text): every `FILE "path"` inside a `<SOURCE …>` block, relative to the
  `.rpp`'s folder or absolute (POSIX or Windows).

Pro Tools (`.ptx`, `.ptf`, `.pts`), Logic (`.logicx`, `.logic`), Cubase/Nuendo (`.cpr`, `.npr`)
and Studio One (`.song`) documents are closed formats: they are listed as not checkable, and
audio files that no readable session mentions are reported instead.

Media references are resolved at ingest to a project-relative path (inside the project) or an
absolute path (outside it) and recorded on the document's tree entry as
`"session": {"format", "media": [...]}` (docs/FORMAT.md 6.1), so an archived version is checked
the same way later. This module parses and checks; it does not read packs.
"""
from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable

OPEN_FORMATS = {".ardour": "ardour", ".rpp": "reaper"}
CLOSED_FORMATS = {".ptx": "Pro Tools", ".ptf": "Pro Tools", ".pts": "Pro Tools",
                  ".logicx": "Logic Pro", ".logic": "Logic Pro", ".cpr": "Cubase",
                  ".npr": "Nuendo", ".song": "Studio One"}
AUDIO_SUFFIXES = {".wav", ".bwf", ".aif", ".aiff", ".aifc", ".rf64", ".w64", ".caf", ".flac",
                  ".mp3", ".ogg", ".opus", ".wv", ".m4a"}
OTHER_MEDIA_SUFFIXES = {".mid", ".midi", ".smf", ".mov", ".mp4", ".mxf", ".avi", ".m4v", ".rx2",
                        ".rex", ".sfz", ".sf2"}
MEDIA_SUFFIXES = AUDIO_SUFFIXES | OTHER_MEDIA_SUFFIXES
# Session documents are small; a "session" larger than this is not parsed (reported unreadable).
MAX_DOCUMENT = 64 * 1024 * 1024

MISSING = "missing"                    # inside the project folder, but not there
EXTERNAL = "external"                  # outside the project folder (not archived with it)
EXTERNAL_MISSING = "external_missing"  # outside the project folder and not found either


class SessionParseError(Exception):
    """A session document that cannot be read as its format."""


def suffix(path: str) -> str:
    """The lower-case extension ('.wav') that every test of a path's kind below goes by."""
    return posixpath.splitext(path)[1].lower()


def session_format(path: str) -> str | None:
    """'ardour' / 'reaper' for an open session document's path, else None."""
    return OPEN_FORMATS.get(suffix(path))


def closed_format(path: str) -> str | None:
    """The product name for a closed-format session document's path, else None."""
    return CLOSED_FORMATS.get(suffix(path))


# -- parsing ------------------------------------------------------------------------------

def parse_ardour(data: bytes) -> tuple[str | None, list[tuple[str, str]]]:
    """(session name, [(source name, "audio"|"midi")]) from an Ardour session document."""
    import xml.etree.ElementTree as ET
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise SessionParseError(f"not well-formed XML ({e})") from None
    if root.tag != "Session":
        raise SessionParseError(f"root element is <{root.tag}>, not <Session>")
    out: list[tuple[str, str]] = []
    sources = root.find("Sources")
    for src in (sources if sources is not None else []):
        if src.tag != "Source":
            continue
        name = src.get("name")
        # playlist sources and sources without a name are not files
        if not name or src.get("playlist") is not None:
            continue
        out.append((name, (src.get("type") or "audio").lower()))
    return root.get("name"), out


_RPP_FILE = re.compile(r"""(?:^|\s)FILE\s+("[^"]*"|'[^']*'|`[^`]*`|\S+)""")


def parse_reaper(data: bytes) -> list[str]:
    """Every media file path named by a `<SOURCE …>` block of a REAPER project, in order."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    first = text.lstrip("\ufeff").lstrip()
    if not first.startswith("<REAPER_PROJECT"):
        raise SessionParseError("does not start with <REAPER_PROJECT")
    out: list[str] = []
    stack: list[str] = []
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("<"):
            stack.append(s[1:].split(None, 1)[0].upper() if len(s) > 1 else "")
            if stack[-1] == "SOURCE":
                m = _RPP_FILE.search(s)  # single-line form: <SOURCE WAVE FILE "x.wav">
                if m:
                    out.append(_unquote(m.group(1)))
            if s.endswith(">"):  # a block opened and closed on one line
                stack.pop()
            continue
        if s == ">":
            if stack:
                stack.pop()
            continue
        if stack and stack[-1] == "SOURCE" and s.startswith("FILE"):
            m = _RPP_FILE.search(s)
            if m:
                out.append(_unquote(m.group(1)))
    return out


def _unquote(tok: str) -> str:
    if len(tok) >= 2 and tok[0] == tok[-1] and tok[0] in "\"'`":
        return tok[1:-1]
    return tok


_WINDOWS_ABS = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")


def _resolve(doc_dir: str, ref: str, root: str) -> str:
    """A reference relative to the document's folder → project-relative path, or absolute."""
    if _WINDOWS_ABS.match(ref):
        return ref.replace("\\", "/")
    if "\\" in ref and "/" not in ref:
        ref = ref.replace("\\", "/")  # a relative Windows path written on a PC
    if ref.startswith("/"):
        rel = _relative_if_inside(posixpath.normpath(ref), root)
        if rel.startswith("/") and root and os.path.lexists(ref):
            # the document may name the project through another mount point or a symlink
            rel = _relative_if_inside(os.path.realpath(ref), os.path.realpath(root))
            return rel if not rel.startswith("/") else posixpath.normpath(ref)
        return rel
    joined = posixpath.normpath(posixpath.join(doc_dir, ref)) if doc_dir else posixpath.normpath(ref)
    if joined == ".." or joined.startswith("../"):
        return posixpath.normpath(posixpath.join(root, joined)) if root else joined
    return joined


def is_external(media: str) -> bool:
    """True for a recorded reference outside the project (an absolute POSIX or Windows path)."""
    return media.startswith("/") or bool(_WINDOWS_ABS.match(media))


def _relative_if_inside(abs_path: str, root: str) -> str:
    if root and (abs_path + "/").startswith(root.rstrip("/") + "/") and abs_path != root:
        return abs_path[len(root.rstrip("/")) + 1:]
    return abs_path


def read_session(data: bytes, rel: str, root: str = "",
                 exists: Callable[[str], bool] | None = None) -> dict | None:
    """The `session` field for the document at project-relative path `rel`, or None.

    `root` is the project folder's absolute path at ingest (absolute references under it become
    project-relative); `exists(rel)` tells whether a project-relative path exists, used to find
    which `interchange/*/` folder holds an Ardour source.
    """
    fmt = session_format(rel)
    if fmt is None:
        return None
    doc_dir = posixpath.dirname(rel)
    try:
        if len(data) > MAX_DOCUMENT:
            raise SessionParseError(f"larger than {MAX_DOCUMENT >> 20} MiB")
        if fmt == "ardour":
            name, sources = parse_ardour(data)
            name = name or posixpath.splitext(posixpath.basename(rel))[0]
            refs = [_ardour_path(doc_dir, name, src, kind, root, exists) for src, kind in sources]
        else:
            refs = [_resolve(doc_dir, r, root) for r in parse_reaper(data)]
    except SessionParseError as e:
        return {"format": fmt, "media": [], "error": str(e)}
    return {"format": fmt, "media": list(dict.fromkeys(refs))}


def _ardour_path(doc_dir: str, name: str, src: str, kind: str, root: str,
                 exists: Callable[[str], bool] | None) -> str:
    if src.startswith("/") or _WINDOWS_ABS.match(src):
        return _resolve(doc_dir, src, root)
    sub = "midifiles" if kind == "midi" else "audiofiles"
    canonical = _resolve(doc_dir, f"interchange/{name}/{sub}/{src}", root)
    if exists is not None and not exists(canonical):
        # Ardour searches every interchange/*/ folder (sources imported from other sessions)
        base = posixpath.join(doc_dir, "interchange") if doc_dir else "interchange"
        for other in _listdir(exists, base):
            cand = posixpath.join(base, other, sub, src)
            if exists(cand):
                return cand
    return canonical


def _listdir(exists, base: str) -> list[str]:
    lister = getattr(exists, "listdir", None)
    return sorted(lister(base)) if lister else []


# -- checking -----------------------------------------------------------------------------

@dataclass
class SessionCheck:
    """What the session documents of a project refer to and what is wrong with it."""

    sessions: list[dict] = field(default_factory=list)   # {"path", "format", "media", "error"?}
    problems: list[dict] = field(default_factory=list)   # {"session", "media", "status"}
    unreferenced: list[str] = field(default_factory=list)
    closed: list[dict] = field(default_factory=list)     # {"path", "format"}

    @property
    def ok(self) -> bool:
        return not self.problems and not any(s.get("error") for s in self.sessions)

    def to_json(self) -> dict:
        return {"ok": self.ok, "sessions": self.sessions, "problems": self.problems,
                "unreferenced": self.unreferenced, "closed": self.closed}

    def summary(self) -> list[str]:
        """Lines a person reads: one per problem, then what could not be checked."""
        lines = []
        for s in self.sessions:
            if s.get("error"):
                lines.append(f"session {s['path']}: unreadable {s['format']} document: {s['error']}")
        for p in self.problems:
            what = {MISSING: "is missing from the project folder",
                    EXTERNAL: "lives outside the project folder (it will NOT be archived)",
                    EXTERNAL_MISSING: "lives outside the project folder and does not exist"}[p["status"]]
            lines.append(f"session {p['session']}: {p['media']} {what}")
        by_format: dict[str, list[str]] = {}
        for c in self.closed:
            by_format.setdefault(c["format"], []).append(c["path"])
        for fmt, paths in by_format.items():
            more = f" and {len(paths) - 1} more" if len(paths) > 1 else ""
            lines.append(f"session {paths[0]}{more}: {fmt} documents are a closed format; "
                         f"their media references cannot be checked")
        return lines


def check(documents: Iterable[tuple[str, dict]], present: Callable[[str], bool],
          exists_abs: Callable[[str], bool] = os.path.exists,
          listed: Iterable[str] = ()) -> SessionCheck:
    """Check session documents against the project's files.

    `documents`: (project-relative path, session field) pairs; `present(rel)`: whether the
    project holds that file; `exists_abs`: whether an absolute path exists on this machine;
    `listed`: the project's audio files and closed-format documents (for the fallback report).
    """
    res = SessionCheck()
    referenced: set[str] = set()
    for path, sess in documents:
        media = sess.get("media", [])
        info = {"path": path, "format": sess.get("format"), "media": len(media)}
        if sess.get("error"):
            info["error"] = sess["error"]
        res.sessions.append(info)
        for m in media:
            if is_external(m):
                status = EXTERNAL if exists_abs(m) else EXTERNAL_MISSING
            elif present(m):
                referenced.add(m)
                continue
            else:
                status = MISSING
            res.problems.append({"session": path, "media": m, "status": status})
    paths = list(listed)
    for p in paths:
        fmt = closed_format(p)
        if fmt:
            res.closed.append({"path": p, "format": fmt})
    if any(not s.get("error") for s in res.sessions):
        res.unreferenced = [p for p in paths if is_audio(p) and p not in referenced]
    return res


def is_audio(path: str) -> bool:
    return suffix(path) in AUDIO_SUFFIXES


def is_media(path: str) -> bool:
    """Audio, MIDI or video: what sessions refer to (kept in memory while a tree is read)."""
    return suffix(path) in MEDIA_SUFFIXES


class TreeWatcher:
    """Collects, entry by entry, what a session check needs from a tree — in memory only the
    session documents, media paths and closed-format documents, so an ingest of a million
    files does not hold a million paths. Other paths are kept only with `keep_all`."""

    def __init__(self, keep_all: bool = False) -> None:
        self.docs: list[tuple[str, dict]] = []
        self.media: set[str] = set()
        self.listed: list[str] = []
        self.others: set[str] | None = set() if keep_all else None

    def add(self, entry: dict) -> None:
        path, t = entry["path"], entry["type"]
        if isinstance(entry.get("session"), dict):
            self.docs.append((path, entry["session"]))
        ext = suffix(path)  # once (not per is_media / is_audio): this runs for every file
        if ext in CLOSED_FORMATS and t in ("file", "dir"):  # Logic's .logicx is a package folder
            self.listed.append(path)
        elif t in ("file", "symlink"):
            if ext in MEDIA_SUFFIXES:
                self.media.add(path)
                if ext in AUDIO_SUFFIXES:
                    self.listed.append(path)
            elif self.others is not None:
                self.others.add(path)

    @property
    def relevant(self) -> bool:
        return bool(self.docs) or any(closed_format(p) for p in self.listed)

    def check(self, other_exists: Callable[[str], bool] | None = None) -> SessionCheck:
        """The check; `other_exists(rel)` answers for non-media paths when not kept."""
        def present(rel: str) -> bool:
            if rel in self.media:
                return True
            if is_media(rel):
                return False
            if self.others is not None:
                return rel in self.others
            return bool(other_exists and other_exists(rel))
        return check(self.docs, present, listed=self.listed)


def check_tree(entries: Iterable[dict]) -> SessionCheck:
    """Check an archived version from its tree entries (their recorded `session` fields)."""
    w = TreeWatcher(keep_all=True)
    for e in entries:
        w.add(e)
    return w.check()


class FolderView:
    """`exists(rel)` for a project folder on disk, with `listdir` for Ardour's interchange."""

    def __init__(self, root: str) -> None:
        self.root = root

    def __call__(self, rel: str) -> bool:
        return os.path.lexists(os.path.join(self.root, *rel.split("/"))) if not rel.startswith("/") \
            else os.path.lexists(rel)

    def listdir(self, rel: str) -> list[str]:
        try:
            return os.listdir(os.path.join(self.root, *rel.split("/")))
        except OSError:
            return []


def read_document(root: str, rel: str) -> dict | None:
    """The `session` field for a document on disk (None when `rel` is not an open session)."""
    if session_format(rel) is None:
        return None
    try:
        with open(os.path.join(root, *rel.split("/")), "rb") as f:
            data = f.read(MAX_DOCUMENT + 1)
    except OSError as e:
        return {"format": session_format(rel), "media": [], "error": f"cannot read: {e.strerror}"}
    return read_session(data, rel, os.path.abspath(root), FolderView(root))


def check_folder(root: str) -> SessionCheck:
    """Check a project folder on disk (before ingest, or after a restore)."""
    w = TreeWatcher(keep_all=True)
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
        for d in dirs:
            w.add({"path": f"{rel_dir}/{d}" if rel_dir else d, "type": "dir"})
        for name in sorted(files):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            e = {"path": rel, "type": "file"}
            sess = read_document(root, rel)
            if sess is not None:
                e["session"] = sess
            w.add(e)
    return w.check()
