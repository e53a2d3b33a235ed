"""Session checks: Ardour and REAPER documents with present, missing and external media, at
ingest (summary, --json, --strict), in the manifest, and on archived versions and folders."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from archivestore import sessions
from archivestore.sessions import EXTERNAL, EXTERNAL_MISSING, MISSING

from .conftest import make_tracks, run_cli, run_json


def write_ardour(path: Path, name: str, sources: list[tuple[str, str]]) -> None:
    """A small but complete Ardour 6/7 session document (sources: (name, type))."""
    src = "\n".join(
        f'    <Source name="{n}" type="{t}" flags="" id="{100 + i}" captured-for="Audio {i}" '
        f'channel="0" origin="" gain="1"/>' for i, (n, t) in enumerate(sources))
    path.write_text(f'''<?xml version="1.0" encoding="UTF-8"?>
<Session version="7003" name="{name}" sample-rate="48000" end-is-free="1" id-counter="400">
  <ProgramVersion created-with="Ardour 7.5" modified-with="Ardour 7.5"/>
  <Config>
    <Option name="native-file-data-format" value="FormatInt24"/>
  </Config>
  <Sources>
{src}
    <Source name="Audio 1" type="audio" flags="" id="300" playlist="301" offset="0" length="48000" original="299"/>
  </Sources>
  <Regions/>
  <Locations/>
  <Routes/>
  <Playlists/>
</Session>
''', encoding="utf-8")


def write_reaper(path: Path, files: list[str]) -> None:
    """A small REAPER project: one track, one item per file (multi-line SOURCE blocks), plus
    one single-line `<SOURCE WAVE FILE "…">` form."""
    items = []
    for i, f in enumerate(files[:-1] if len(files) > 1 else files):
        items.append(f'''    <ITEM
      POSITION {i * 2}.0
      LENGTH 2.0
      NAME "take {i}"
      <SOURCE WAVE
        FILE "{f}"
      >
    >''')
    if len(files) > 1:
        items.append(f'''    <ITEM
      POSITION 99.0
      <SOURCE WAVE FILE "{files[-1]}">
    >''')
    body = "\n".join(items)
    path.write_text(f'''<REAPER_PROJECT 0.1 "6.80/linux-x86_64" 1700000000
  RIPPLE 0
  RECORD_PATH "Audio" ""
  SAMPLERATE 48000 0 0
  <NOTES 0 2
  >
  <TRACK {{6A1F0C5E-0000-4000-8000-000000000001}}
    NAME "Vox"
{body}
  >
>
''', encoding="utf-8")


@pytest.fixture
def ardour_project(tmp_path):
    root = tmp_path / "Night Drive"
    make_tracks(root / "interchange" / "Night Drive" / "audiofiles", n=2, seconds=0.5)
    ext = tmp_path / "Sample Library"
    make_tracks(ext, n=1, seconds=0.5, seed=3)
    write_ardour(root / "Night Drive.ardour", "Night Drive", [
        ("Track 1.wav", "audio"),                     # present
        ("Track 2.wav", "audio"),                     # present
        ("Gone Take.wav", "audio"),                   # missing
        (str(ext / "Track 1.wav"), "audio"),          # external (exists)
        ("/Volumes/Old Drive/Clap.wav", "audio"),     # external and missing
    ])
    return root, ext


@pytest.fixture
def reaper_project(tmp_path):
    root = tmp_path / "Harbour"
    make_tracks(root / "Audio", n=2, seconds=0.5)
    ext = tmp_path / "Elsewhere"
    make_tracks(ext, n=1, seconds=0.5, seed=4)
    write_reaper(root / "Harbour.rpp", [
        "Audio/Track 1.wav",                          # present, relative
        str(root / "Audio" / "Track 2.wav"),          # present, absolute inside the project
        "Audio/Lost.wav",                             # missing
        "../Elsewhere/Track 1.wav",                   # external (exists), relative
        "C:\\Users\\pat\\Desktop\\vox.wav",          # external Windows path, not here
    ])
    return root, ext


def test_parse_ardour_resolves_interchange_and_absolute():
    doc = Path(__file__)  # any path; parsing only
    _ = doc
    data = b'''<?xml version="1.0"?><Session name="S"><Sources>
      <Source name="a.wav" type="audio"/><Source name="m.mid" type="midi"/>
      <Source name="/abs/x.wav" type="audio"/><Source name="pl" type="audio" playlist="1"/>
    </Sources></Session>'''
    s = sessions.read_session(data, "sub/S.ardour", root="/proj")
    assert s == {"format": "ardour", "media": ["sub/interchange/S/audiofiles/a.wav",
                                               "sub/interchange/S/midifiles/m.mid", "/abs/x.wav"]}
    bad = sessions.read_session(b"<Session><Sources>", "S.ardour")
    assert bad["format"] == "ardour" and bad["media"] == [] and "XML" in bad["error"]


def test_parse_reaper_forms():
    data = b'''<REAPER_PROJECT 0.1 "6.80"
  <TRACK
    <ITEM
      <SOURCE SECTION
        <SOURCE WAVE
          FILE "nested/a.wav"
        >
      >
      <SOURCE FLAC
        FILE 'b c.flac' 1
      >
      <SOURCE WAVE FILE "/abs/d.wav">
      <SOURCE MIDI
        HASDATA 1 960 QN
      >
    >
    FILE "not-a-source.wav"
  >
>'''
    s = sessions.read_session(data, "proj/song.rpp", root="/home/x/P")
    assert s == {"format": "reaper", "media": ["proj/nested/a.wav", "proj/b c.flac", "/abs/d.wav"]}
    # absolute paths under the project folder become project-relative
    s = sessions.read_session(b'<REAPER_PROJECT\n<SOURCE WAVE\nFILE "/home/x/P/a.wav"\n>\n>', "s.rpp",
                              root="/home/x/P")
    assert s["media"] == ["a.wav"]
    assert "REAPER" in sessions.read_session(b"hello", "x.rpp")["error"]


def _statuses(check: dict) -> dict:
    return {p["media"]: p["status"] for p in check["problems"]}


def test_ardour_ingest_warns_and_records(ardour_project, store):
    root, ext = ardour_project
    out = run_json("ingest", root, "--store", store)
    sc = out["session_check"]
    assert sc["ok"] is False
    assert sc["sessions"] == [{"path": "Night Drive.ardour", "format": "ardour", "media": 5}]
    assert _statuses(sc) == {
        "interchange/Night Drive/audiofiles/Gone Take.wav": MISSING,
        str(ext / "Track 1.wav"): EXTERNAL,
        "/Volumes/Old Drive/Clap.wav": EXTERNAL_MISSING,
    }
    assert sc["unreferenced"] == []  # both archived tracks are used by the session
    # the manifest records the references on the document's entry
    ls = run_json("ls", "Night Drive", "--store", store)
    doc = next(e for e in ls["entries"] if e["path"] == "Night Drive.ardour")
    assert doc["session"]["format"] == "ardour"
    assert "interchange/Night Drive/audiofiles/Track 1.wav" in doc["session"]["media"]
    # human summary names each problem on stderr
    r = run_cli("ingest", root, "--store", store)
    assert "Gone Take.wav is missing from the project folder" in r.stderr
    assert "lives outside the project folder (it will NOT be archived)" in r.stderr
    assert "--strict" in r.stderr


def test_ardour_strict_refuses_and_archives_nothing(ardour_project, store):
    root, _ext = ardour_project
    r = run_cli("ingest", root, "--store", store, "--strict", expect=3)
    assert "Gone Take.wav" in r.stderr and "--strict" in r.stderr
    assert run_json("projects", "--store", store)["projects"] == []


def test_ardour_clean_session_passes_strict(tmp_path, store):
    root = tmp_path / "Clean"
    make_tracks(root / "interchange" / "Clean" / "audiofiles", n=2, seconds=0.5)
    make_tracks(root / "Bounces", n=1, seconds=0.5, seed=8)
    write_ardour(root / "Clean.ardour", "Clean", [("Track 1.wav", "audio"), ("Track 2.wav", "audio")])
    out = run_json("ingest", root, "--store", store, "--strict")
    sc = out["session_check"]
    assert sc["ok"] and sc["problems"] == []
    assert sc["unreferenced"] == ["Bounces/Track 1.wav"]
    r = run_json("check-session", "Clean", "--store", store)
    assert r["ok"] and r["target"] == "Clean version 1"


def test_reaper_ingest_and_check_archived(reaper_project, store, tmp_path):
    root, ext = reaper_project
    out = run_json("ingest", root, "--store", store)
    sc = out["session_check"]
    assert _statuses(sc) == {
        "Audio/Lost.wav": MISSING,
        str(ext / "Track 1.wav"): EXTERNAL,
        "C:/Users/pat/Desktop/vox.wav": EXTERNAL_MISSING,
    }
    assert sc["sessions"][0]["media"] == 5
    # checked again later from the manifest alone: same answer, exit 1
    chk = run_json("check-session", "Harbour", "--store", store, expect=1)
    assert _statuses(chk) == _statuses(sc)
    r = run_cli("check-session", "Harbour", "--store", store, expect=1)
    assert "Audio/Lost.wav is missing" in r.stdout
    # fix the project: copy the external take in, drop the lost ones; version 2 is clean
    (root / "Audio" / "Ext.wav").write_bytes((ext / "Track 1.wav").read_bytes())
    write_reaper(root / "Harbour.rpp", ["Audio/Track 1.wav", "Audio/Ext.wav", "Audio/Track 2.wav"])
    out2 = run_json("ingest", root, "--store", store, "--strict")
    assert out2["version"] == 2 and out2["session_check"]["ok"]
    assert run_json("check-session", "Harbour", "--store", store)["ok"]
    assert not run_json("check-session", "Harbour", "--version", "1", "--store", store, expect=1)["ok"]
    # a restored copy checks clean as a folder
    dest = tmp_path / "restored"
    run_cli("restore", "Harbour", "--store", store, "--to", dest)
    assert run_json("check-session", dest, "--folder")["ok"]


def test_closed_format_falls_back_to_unreferenced_audio(tmp_path, store):
    root = tmp_path / "PT Project"
    make_tracks(root / "Audio Files", n=3, seconds=0.3)
    (root / "PT Project.ptx").write_bytes(b"\x03\x00binary pro tools")
    write_reaper(root / "Alt mix.rpp", ["Audio Files/Track 1.wav"])
    out = run_json("ingest", root, "--store", store)
    sc = out["session_check"]
    assert sc["closed"] == [{"path": "PT Project.ptx", "format": "Pro Tools"}]
    assert sc["unreferenced"] == ["Audio Files/Track 2.wav", "Audio Files/Track 3.wav"]
    assert sc["ok"]
    r = run_cli("check-session", "PT Project", "--store", store)
    assert "closed format" in r.stdout and "Audio Files/Track 3.wav" in r.stdout


def test_project_without_sessions_has_no_check(session, store):
    out = run_json("ingest", session, "--store", store)
    # the shared fixture holds a .ptx: named as closed, nothing readable to compare with
    sc = out["session_check"]
    assert sc["closed"] == [{"path": "Paper Boats.ptx", "format": "Pro Tools"}]
    assert sc["sessions"] == [] and sc["unreferenced"] == [] and sc["ok"]


def test_check_session_folder_before_ingest(ardour_project):
    root, _ext = ardour_project
    r = run_cli("check-session", root, "--folder", "--json", expect=1)
    out = json.loads(r.stdout)
    assert out["ok"] is False and len(out["problems"]) == 3


def test_absolute_reference_through_symlinked_mount(tmp_path, store):
    """A REAPER project naming its own files by an absolute path through a symlinked mount
    point (/Volumes/Sessions → the real disk) is inside the project, not external."""
    real = tmp_path / "disk" / "Job"
    make_tracks(real / "Audio", n=1, seconds=0.2)
    mount = tmp_path / "Volumes"
    mount.mkdir()
    (mount / "Sessions").symlink_to(tmp_path / "disk")
    write_reaper(real / "Job.rpp", [str(mount / "Sessions" / "Job" / "Audio" / "Track 1.wav")])
    out = run_json("ingest", real, "--store", store, "--strict")
    assert out["session_check"]["ok"] and out["session_check"]["unreferenced"] == []
