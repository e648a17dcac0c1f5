"""Shared plumbing of the headless tools (tools/bake.py, batch_bake.py, preview.py).

The tools run both as ``blender -b -P tools/X.py -- ARGS`` and as ``python tools/X.py ARGS``
with the bpy wheel. Every failure ends in one ``error: ...`` line on stderr and an exit status:
1 for bad input (files, settings, a failed bake), 2 for bad usage (unknown or malformed options),
130 when interrupted (Ctrl-C); nothing is written then, and an existing output stays as it was.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
import tempfile

import bpy

from . import api, bake
from .engine import errors


def script_args(argv=None) -> list:
    """Arguments meant for the script: after ``--`` under Blender, else sys.argv[1:]."""
    if argv is not None:
        return list(argv)
    if "--" in sys.argv:
        return sys.argv[sys.argv.index("--") + 1:]
    if os.path.basename(sys.argv[0]).lower().startswith("blender"):
        return []  # blender -b -P script.py with no "--": Blender's own arguments are not ours
    return sys.argv[1:]


EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def fail(message: str, code: int = EXIT_ERROR):
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the tools' error format: one ``error:`` line, exit status 2 (usage)."""

    def error(self, message):
        fail(f"{message} (see {self.prog} --help)", EXIT_USAGE)


def run_main(main, argv=None, interrupted: str = "interrupted (nothing was written)") -> int:
    """Run a tool's ``main``: errors -> one line and status 1, Ctrl-C -> status 130."""
    try:
        return main(argv)
    except errors.SpeechToFaceError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail(interrupted, EXIT_INTERRUPTED)
    except MemoryError:
        fail("out of memory: try --mode compact or a shorter clip")


def print_result(result, out: str) -> None:
    """What a bake tool prints when it is done: warnings, the summary, the networks, the file."""
    for w in result.warnings:
        print(f"warning: {w}")
    print(result.summary())
    print(f"networks: {result.description}")
    print(f"wrote {os.path.abspath(out)} ({os.path.getsize(out) / 1e6:.1f} MB)")


def progress_printer(step: int = 10):
    """A bake's ``progress`` callback for the command line: one "progress: N %" line on stderr each
    time the bake passes another ``step`` per cent (long headless bakes show they are alive)."""
    shown = [-1]

    def report(fraction: float) -> None:
        percent = int(100 * min(1.0, max(0.0, fraction))) // step * step
        if percent > shown[0]:
            shown[0] = percent
            print(f"progress: {percent} %", file=sys.stderr, flush=True)
    return report


def check_settings(*, fps=None, intensity=1.0, tolerance_mm=0.1, start_frame=1, mode="PER_FRAME") -> None:
    """The settings' ranges, before any file is read (SpeechToFaceError naming the option)."""
    from .engine import limits
    from . import job
    if fps is not None:
        limits.check_fps(fps)
    limits.check_intensity(intensity)
    if mode == "COMPACT":
        limits.check_tolerance_mm(tolerance_mm)
    job.check_start_frame(start_frame)


def add_input_options(ap: argparse.ArgumentParser, mesh_help: str) -> None:
    """The head (--mesh, or --blend with --object), --audio, --out and --take of a one-clip bake."""
    src = ap.add_argument_group("head")
    src.add_argument("--mesh", default="", help=mesh_help)
    src.add_argument("--blend", default="", help="or a .blend holding the head...")
    src.add_argument("--object", default="", help="...and the head object's name in it")
    ap.add_argument("--audio", required=True, help="speech audio (WAV/FLAC/OGG/MP3...)")
    ap.add_argument("--out", required=True, help="output .blend")
    ap.add_argument("--take", default="main", help="name of this bake (re-baking a take replaces it)")


def add_bake_options(ap: argparse.ArgumentParser, defaults_only: bool = False) -> None:
    """Options shared by bake.py and batch_bake.py (batch rows may override some)."""
    ap.add_argument("--fps", type=float, default=None,
                    help="animation frame rate (default: 30, or the .blend scene's rate); 29.97 etc. ok")
    ap.add_argument("--mode", choices=["per-frame", "compact"], default="per-frame",
                    help="per-frame: one shape key per frame (exact); compact: PCA basis + weight curves")
    ap.add_argument("--tolerance-mm", type=float, default=0.1,
                    help="compact mode: max vertex error in mm on a FLAME-sized head (default 0.1)")
    ap.add_argument("--start-frame", type=float, default=1, metavar="FRAME",
                    help="frame where sound and animation start (default 1)")
    ap.add_argument("--intensity", type=float, default=1.0, help="scale of the predicted motion")
    ap.add_argument("--encoder", choices=["hama", "mel", "wav2vec2"], default="hama",
                    help="speech encoder (hama falls back to mel where it cannot run)")
    ap.add_argument("--backend", choices=["numpy", "torch"], default="numpy")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="torch back end only")
    ap.add_argument("--weights", default="", help="weights folder (default: the bundled weights/)")
    ap.add_argument("--allow-random", action="store_true",
                    help="use random-initialised networks when no trained weights are found (to try the set-up; "
                         "the motion is meaningless); without it missing weights are an error")
    ap.add_argument("--require-trained", action="store_true", help=argparse.SUPPRESS)  # the default now
    ap.add_argument("--allow-large", action="store_true",
                    help="per-frame mode: write files larger than 1 GB (about 8.6 minutes at 30 fps)")
    ap.add_argument("--no-pack-audio", action="store_true",
                    help="reference the audio file instead of packing it into the .blend")
    ap.add_argument("--compress", action="store_true", help="write compressed .blend files")
    face = ap.add_argument_group("expression")
    face.add_argument("--emotion", default="neutral",
                      help="neutral, happy, sad, angry or surprised, with a strength ('sad:0.6'), or keyframes "
                           "'0:neutral, 2.5:happy:0.8' (seconds:emotion[:strength]); needs weights trained with codes")
    face.add_argument("--style", type=float, default=0.0,
                      help="speaking style: -1 relaxed (a mumble) .. 0 everyday .. 1 precise, energetic")
    face.add_argument("--jaw", type=float, default=1.0, help="jaw intensity (0-3)")
    face.add_argument("--lips", type=float, default=1.0, help="lip intensity (0-3)")
    face.add_argument("--upper-face", type=float, default=1.0, help="upper-face intensity: brows, lids (0-3)")
    face.add_argument("--no-upper-face-layer", action="store_true",
                      help="no blinks, prosodic brows or cheeks (the layer baked as its own S2F_<take>_upper_* keys)")
    face.add_argument("--seed", type=int, default=0, help="the upper-face layer's random choices (blink times)")


def settings_from(args, **override) -> dict:
    s = dict(mode="COMPACT" if args.mode == "compact" else "PER_FRAME", intensity=args.intensity,
             encoder=args.encoder, backend=args.backend, device=args.device, weights_dir=args.weights,
             allow_random=bool(args.allow_random and not args.require_trained), tolerance_mm=args.tolerance_mm,
             allow_large=bool(args.allow_large), emotion=args.emotion, style=args.style, jaw=args.jaw,
             lips=args.lips, upper_face=args.upper_face, upper_face_layer=not args.no_upper_face_layer,
             seed=args.seed)
    s.update(override)
    return s


def new_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return bpy.context.scene


def open_blend(path: str):
    if not os.path.isfile(path):
        raise errors.SpeechToFaceError(f"Blend file not found: {path}")
    if not os.access(path, os.R_OK):
        raise errors.SpeechToFaceError(f"Cannot read {path}: permission denied.")
    try:
        bpy.ops.wm.open_mainfile(filepath=os.path.abspath(path))
    except RuntimeError as exc:
        raise errors.SpeechToFaceError(f"Cannot open {path}: {exc}") from None
    return bpy.context.scene


def pick_object(name: str = ""):
    if name:
        obj = bpy.data.objects.get(name)
        if obj is None:
            meshes = ", ".join(o.name for o in bpy.data.objects if o.type == "MESH") or "none"
            raise errors.SpeechToFaceError(f"No object named '{name}' (meshes: {meshes}).")
        return obj
    baked = [o for o in bpy.data.objects if o.type == "MESH" and bake.takes(o)]
    if len(baked) == 1:
        return baked[0]
    meshes = [o for o in bpy.data.objects if o.type == "MESH"]
    if len(meshes) == 1:
        return meshes[0]
    raise errors.SpeechToFaceError(
        f"{len(meshes)} meshes in the file: say which with --object ({', '.join(o.name for o in meshes)}).")


TEMP_MARK = ".s2f-tmp-"   # .<name>.s2f-tmp-<pid>-<hex>.blend: our temporaries, recognisably named
_TEMP_RE = re.compile(r"^\..*" + re.escape(TEMP_MARK) + r"(\d+)-[0-9a-f]+\.blend@?$")


def check_writable(path: str, what: str = "--out") -> None:
    """Before any heavy work: can a file be created at ``path``? SpeechToFaceError if not.

    Nothing is created here except a probe file that is removed at once (os.access lies for root
    and on some network filesystems)."""
    path = os.path.abspath(path)
    if os.path.isdir(path):
        raise errors.SpeechToFaceError(f"{what} {path} is a directory: give a .blend file path.")
    parent = os.path.dirname(path)
    existing = parent
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise errors.SpeechToFaceError(f"{what} {path}: {existing} is a file, not a folder.")
    if existing != parent:
        return  # the folders will be created inside ``existing``; probe there
    try:
        fd, probe = tempfile.mkstemp(prefix="." + os.path.basename(path) + TEMP_MARK + f"{os.getpid()}-",
                                     suffix=".blend", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise errors.SpeechToFaceError(f"{what} {path}: cannot write in {parent} ({exc.strerror}).") from None


def _remove_stale_temporaries(folder: str) -> None:
    """Temporaries of our saves whose process is gone (killed during a save)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        m = _TEMP_RE.match(name)
        if m is None or _process_alive(int(m.group(1))):
            continue
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:
            pass


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process, or cannot tell: leave its file alone
    return True


def save_blend(path: str, compress: bool = False, pack_audio: bool = True) -> None:
    """Write the open file to ``path`` atomically: a whole new file or the previous one, never half.

    Blender's own save writes ``path@`` and renames it, so two processes saving one path share
    that temporary and can lose the file. Here each save writes its own uniquely named copy in
    the same folder (``copy=True``: the open file keeps its name), then ``os.replace`` moves it
    over ``path`` in one step; the previous file becomes ``path1`` as with Blender's save.
    """
    path = os.path.abspath(path)
    check_writable(path)
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    _remove_stale_temporaries(folder)
    if pack_audio:
        for sound in bpy.data.sounds:
            if sound.packed_file is None and os.path.isfile(bpy.path.abspath(sound.filepath)):
                sound.pack()
    tmp = os.path.join(folder, f".{os.path.basename(path)}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}.blend")
    ok = False
    try:
        _write_copy(tmp, compress)
        if not os.path.isfile(tmp) or os.path.getsize(tmp) == 0:
            raise OSError(f"Blender reported a save but {tmp} is missing")
        if os.path.isfile(path):
            _backup(path)
        os.replace(tmp, path)
        ok = True
    except (RuntimeError, OSError) as exc:
        raise errors.SpeechToFaceError(f"Cannot write {path}: {exc}") from None
    finally:
        if not ok:  # also on Ctrl-C: no temporary left behind, the previous file untouched
            for leftover in (tmp, tmp + "@"):
                if os.path.exists(leftover):
                    os.unlink(leftover)
    if not os.path.isfile(path):
        raise errors.SpeechToFaceError(f"Cannot write {path}: the file is not there after saving.")


def _write_copy(filepath: str, compress: bool) -> None:
    bpy.ops.wm.save_as_mainfile(filepath=filepath, compress=compress, check_existing=False, copy=True)


def _backup(path: str) -> None:
    """``path`` -> ``path1`` (Blender's one-version backup) without a moment where ``path`` is gone."""
    link = f"{path}1{TEMP_MARK}{os.getpid()}"
    try:
        if os.path.exists(link):
            os.unlink(link)
        os.link(path, link)          # hard link: no copy, ``path`` stays in place
        os.replace(link, path + "1")
    except OSError:
        pass  # no hard links here (some network/FAT filesystems): keep no backup rather than fail


def _scene_with_head(mesh: str, blend: str, object_name: str, fps, load=None, formats: str = "OBJ/PLY"):
    """The scene and the object to bake: a head from --mesh in a new scene (read by ``load``,
    FLAME heads by default), or --object in --blend."""
    if blend:
        scene = open_blend(blend)
        obj = pick_object(object_name)
    else:
        if not mesh:
            raise errors.SpeechToFaceError(f"Give --mesh ({formats}) or --blend with --object.")
        scene = new_scene()
        obj = (load or api.load_head)(mesh)
    if fps is not None:
        api.set_fps(scene, fps)
    elif not blend:
        api.set_fps(scene, 30.0)
    return scene, obj


OTHER_TOPOLOGY = (" A head of another topology takes target 'any' (tools/bake.py --target any; in a batch, "
                  "the item's 'target' column).")


def _checked_item(settings: dict, fps, start_frame, blend: str, object_name: str, out: str) -> int:
    """Every check of one bake's inputs before anything is loaded; returns the start frame."""
    from . import job
    check_settings(fps=fps, intensity=settings.get("intensity", 1.0), tolerance_mm=settings.get("tolerance_mm", 0.1),
                   start_frame=start_frame, mode=settings.get("mode", "PER_FRAME"))
    if object_name and not blend:
        raise errors.SpeechToFaceError("--object names a head inside --blend; with --mesh leave it out.")
    start_frame = job.check_start_frame(start_frame)
    check_writable(out)
    return start_frame


def bake_file(args_like, mesh: str, audio: str, out: str, *, fps=None, start_frame=1, blend: str = "",
              object_name: str = "", take: str = "main", progress=None, **settings) -> api.BakeResult:
    """One input -> one .blend: what tools/bake.py does, reused per item by batch_bake.py."""
    start_frame = _checked_item(settings, fps, start_frame, blend, object_name, out)
    scene, obj = _scene_with_head(mesh, blend, object_name, fps)
    try:
        result = api.bake(obj, audio, scene=scene, start_frame=start_frame, take=take, progress=progress,
                          **settings)
    except errors.TopologyError as exc:
        raise errors.TopologyError(str(exc).rstrip(".") + "." + OTHER_TOPOLOGY) from None
    scene.frame_current = result.start_frame
    save_blend(out, compress=args_like.compress, pack_audio=not args_like.no_pack_audio)
    return result


def bake_arkit_file(args_like, mesh: str, audio: str, out: str, *, fps=None, start_frame=1, blend: str = "",
                    object_name: str = "", csv_path: str = "", json_path: str = "", **settings) -> dict:
    """--target arkit: speech -> the 52 ARKit weights keyed on a character's ARKit-named shape keys
    (``--blend``/``--object``), or on a FLAME head given the project's ARKit shapes (``--mesh``),
    with the sound strip on the same frame; optionally Live Link Face CSV and JSON files too."""
    from . import arkit_target, audio_source, engine, job
    check_settings(fps=fps, intensity=settings.get("intensity", 1.0), start_frame=start_frame)
    start_frame = job.check_start_frame(start_frame)
    check_writable(out)
    for path in (csv_path, json_path):
        if path:
            check_writable(path)
    s = job.BakeSettings(**{k: v for k, v in settings.items() if k in job.BakeSettings.__dataclass_fields__})
    try:
        expr = s.expression()
    except ValueError as exc:
        raise errors.SpeechToFaceError(str(exc)) from None
    try:
        scene, obj = _scene_with_head(mesh, blend, object_name, fps)
        if not blend:
            arkit_target.add_basis_keys(obj)   # a FLAME head becomes an ARKit-rigged character
    except errors.TopologyError as exc:
        # the 52 shapes are made for FLAME's topology; other characters bring their own keys
        raise errors.TopologyError(
            f"{str(exc).rstrip('.')}. The ARKit target adds its 52 shapes only to a FLAME-topology head given as a "
            "mesh file; a character of another topology needs its own ARKit-named shape keys (give its .blend "
            "and object).") from None
    problem = arkit_target.target_problem(obj)
    if problem:
        raise errors.SpeechToFaceError(problem)
    clip = audio_source.clip_from_file(audio, int(start_frame))
    encoder = engine.resolve_encoder(s.encoder)[0]
    animator = engine.load_animator(s.weights_dir or None, encoder, s.backend, s.device, s.allow_random)
    result = arkit_target.bake([obj], (clip.samples, clip.rate), animator=animator,
                               fps=audio_source.scene_fps(scene), start_frame=clip.start_frame,
                               csv_path=csv_path, json_path=json_path, expression=expr)
    audio_source.add_strip_for(scene, clip)
    frames = len(result["weights"])
    from . import bake as writer
    writer.cover_frame_range(scene, clip.start_frame, frames)
    scene.frame_current = clip.start_frame
    save_blend(out, compress=args_like.compress, pack_audio=not args_like.no_pack_audio)
    record = result["objects"][obj.name]
    return {"object": obj.name, "frames": frames, "report": arkit_target.report(record),
            "description": animator.describe(), "trained": animator.trained, "csv": csv_path, "json": json_path}



MESH_IMPORTERS = {".obj": "wm.obj_import", ".ply": "wm.ply_import", ".fbx": "import_scene.fbx",
                  ".glb": "import_scene.gltf", ".gltf": "import_scene.gltf"}


def import_mesh(path: str):
    """A head of any topology from a mesh file, read by Blender's own importers (vertex order does
    not matter for the any-head target); the largest mesh in the file is the head."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in MESH_IMPORTERS:
        raise errors.SpeechToFaceError(f"Unsupported mesh format '{ext}': use one of {sorted(MESH_IMPORTERS)}.")
    if not os.path.isfile(path):
        raise errors.SpeechToFaceError(f"Mesh file not found: {path}")
    if ext in (".glb", ".gltf"):
        import addon_utils
        addon_utils.enable("io_scene_gltf2", default_set=True)
    before = set(bpy.data.objects)
    group, name = MESH_IMPORTERS[ext].split(".")
    getattr(getattr(bpy.ops, group), name)(filepath=os.path.abspath(path))
    meshes = [o for o in bpy.data.objects if o not in before and o.type == "MESH"]
    if not meshes:
        raise errors.SpeechToFaceError(f"{path} holds no mesh.")
    # The largest mesh is the head (eyes and teeth in the same file are smaller).
    return max(meshes, key=lambda o: len(o.data.vertices))


def bake_any_file(args_like, mesh: str, audio: str, out: str, *, fps=None, start_frame=1, blend: str = "",
                  object_name: str = "", landmarks=None, refit: bool = False, jaw_parts=(), take: str = "main",
                  **settings):
    """--target any: one head of any topology -> one .blend (tools/bake_any_head.py, batch items).

    The FLAME template is fitted unless the head in ``blend`` already carries a fit (``refit`` or
    ``landmarks`` fit again); ``jaw_parts`` are names of objects in ``blend`` (or imported with ``mesh``) that follow the jaw.
    Returns (BakeResult, the new Registration or None when the stored fit was used)."""
    from . import any_head
    start_frame = _checked_item(settings, fps, start_frame, blend, object_name, out)
    scene, obj = _scene_with_head(mesh, blend, object_name, fps, load=import_mesh, formats="OBJ/PLY/FBX/glTF")
    parts = []
    for name in jaw_parts:
        part = scene.objects.get(name)
        if part is None:
            raise errors.SpeechToFaceError(f"No object named '{name}' for the jaw parts.")
        parts.append(part)
    reg = None
    if refit or landmarks or not any_head.is_registered(obj):
        reg = any_head.register(obj, landmarks=landmarks)
    result = any_head.bake(obj, audio, scene=scene, start_frame=start_frame, take=take, jaw_parts=parts, **settings)
    scene.frame_current = result.start_frame
    save_blend(out, compress=args_like.compress, pack_audio=not args_like.no_pack_audio)
    return result, reg


def read_landmarks(path: str) -> dict:
    """Named points for the any-head fit from a JSON file ({"nose_tip": [x, y, z], ...})."""
    import json
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object of named points")
        return {str(k): tuple(float(c) for c in v) for k, v in data.items()}
    except (OSError, ValueError, TypeError) as exc:
        raise errors.SpeechToFaceError(f"Cannot read landmarks {path}: {exc}") from None
