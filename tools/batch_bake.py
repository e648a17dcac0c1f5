"""Bake many clips: a folder of audio files, or a CSV/JSON manifest, one output per line.

    python tools/batch_bake.py clips/ --mesh head.ply --out-dir baked/
    python tools/batch_bake.py shots.csv --out-dir baked/            (columns below)
    python tools/batch_bake.py clips/ --mesh head.ply --takes baked/all_lines.blend
    blender -b -P tools/batch_bake.py -- clips/ --out-dir baked/

Manifest columns (CSV header or JSON objects; only ``audio`` is required, relative paths are
relative to the manifest): audio, name, mesh, blend, object, out, fps, start_frame, mode,
intensity, emotion, style, jaw, lips, upper_face, seed, target, arkit_csv, arkit_json, landmarks,
jaw_parts. Command-line options are the defaults for missing columns.

Targets (column ``target``, default --target, itself default flame), as tools/bake.py's:
  flame  a FLAME-topology head (mesh .ply/.obj, or blend + object);
  arkit  the 52 ARKit weights keyed on a character's ARKit-named shape keys (blend + object), or
         on a FLAME head given the project's 52 shapes (mesh); ``arkit_csv``/``arkit_json`` also
         write the weights as Live Link Face CSV / JSON (--arkit-files: <out>.csv and <out>.json
         beside every ARKit item's .blend);
  any    a head of any topology (mesh .obj/.ply/.fbx/.glb, or blend + object), fitted with the
         FLAME template unless the .blend's head is already fitted; ``landmarks``: a JSON file of
         named points when automatic fitting fails; ``jaw_parts``: comma-separated objects that
         follow the jaw.
An item whose head cannot take its target (arkit on a mesh without ARKit-named shape keys, flame
on a head of another topology...) fails with the reason and the batch goes on; input files are
never written.

Default: one .blend per item (<out-dir>/<name>.blend). ``--takes FILE.blend``: every clip on
one head, one Action per clip (named S2F_<name>_<mesh>), the last one assigned (targets flame and
any: an any head is fitted once).
Finished items are skipped when rerun (--force redoes them); a failing item is reported and
the batch goes on; the exit status is 1 if any item failed. A JSON summary is written beside
the outputs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from tools.blender_entry import require_bpy  # noqa: E402

require_bpy(__file__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff", ".m4a", ".opus")
DEFAULT_HEAD = os.path.join(ROOT, "core", "assets", "heads", "sample_neutral.ply")


def parser():
    from blender_addon import headless
    ap = headless.ArgumentParser(prog="batch_bake.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("input", help="folder of audio files, or a .csv/.json manifest")
    ap.add_argument("--mesh", default="", help="default head: .ply/.obj (FLAME topology), or also .fbx/.glb with target any (default: the bundled sample head)")
    ap.add_argument("--out-dir", default="", help="one .blend per item here (default: <input>_baked)")
    ap.add_argument("--takes", default="", metavar="FILE.blend",
                    help="instead: all clips on one head in this .blend, one Action per clip")
    ap.add_argument("--object", default="", help="--takes into an existing .blend: the head's name in it")
    ap.add_argument("--force", action="store_true", help="redo items whose output already exists")
    ap.add_argument("--target", choices=TARGETS, default="flame",
                    help="default target of the items (column 'target'): flame, arkit or any (see below)")
    ap.add_argument("--arkit-files", action="store_true",
                    help="ARKit items also write <out>.csv (Live Link Face) and <out>.json beside their .blend")
    headless.add_bake_options(ap)
    return ap


def _name(text: str) -> str:
    from blender_addon import bake
    return bake.take_name(text)


TARGETS = ("flame", "arkit", "any")
TEXT_FIELDS = ("audio", "name", "mesh", "blend", "object", "out", "mode", "target", "arkit_csv", "arkit_json",
               "landmarks", "jaw_parts")
PATH_FIELDS = ("audio", "mesh", "blend", "out", "arkit_csv", "arkit_json", "landmarks")


def read_items(source: str) -> list[dict]:
    """[{audio, name, ...}] from a folder or a manifest; SystemExit with a message if unusable."""
    from blender_addon import headless
    if os.path.isdir(source):
        files = sorted(f for f in os.listdir(source) if f.lower().endswith(AUDIO_SUFFIXES))
        if not files:
            headless.fail(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in {source}")
        return [{"audio": os.path.join(source, f), "name": _name(os.path.splitext(f)[0])} for f in files]
    if not os.path.isfile(source):
        headless.fail(f"input not found: {source}")
    base = os.path.dirname(os.path.abspath(source))
    try:
        if source.lower().endswith(".json"):
            with open(source, encoding="utf-8-sig") as fh:
                data = json.load(fh)
            if isinstance(data, dict):
                if "items" not in data:
                    headless.fail(f"{source}: a JSON manifest is a list of items or an object with \"items\" "
                                  f"(found keys: {', '.join(map(str, data)) or 'none'})")
                data = data["items"]
            if not isinstance(data, list):
                headless.fail(f"{source}: the items must be a JSON list, got {type(data).__name__}")
            rows = data
        elif source.lower().endswith(".csv"):
            # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark.
            with open(source, newline="", encoding="utf-8-sig") as fh:
                rows = list(csv.DictReader(fh))
        else:
            headless.fail(f"{source}: give a folder, a .csv or a .json manifest")
    except (OSError, ValueError, csv.Error) as exc:
        headless.fail(f"cannot read manifest {source}: {exc}")
    if not rows:
        headless.fail(f"{source}: the manifest has no items")
    items = []
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            headless.fail(f"{source}: item {i} is {json.dumps(row)}, not an object with an 'audio' field")
        row = {str(k).strip(): v for k, v in row.items() if k is not None}
        for key in TEXT_FIELDS:
            if row.get(key) is not None and not isinstance(row[key], str):
                headless.fail(f"{source}: item {i}: '{key}' must be text, got {json.dumps(row[key])}")
        if not (row.get("audio") or "").strip():
            headless.fail(f"{source}: item {i} has no 'audio' (columns: {', '.join(row) or 'none'})")
        item = {k: v for k, v in row.items() if v not in (None, "")}
        for key in PATH_FIELDS:
            if key in item and not os.path.isabs(item[key]):
                item[key] = os.path.join(base, item[key])
        item["name"] = _name(item.get("name") or os.path.splitext(os.path.basename(item["audio"]))[0])
        items.append(item)
    return items


def item_out(item, out_dir: str) -> str:
    return item.get("out") or os.path.join(out_dir, item["name"] + ".blend")


def arkit_files(args, item, out: str) -> tuple:
    """(CSV path, JSON path) an ARKit item writes besides its .blend ("" for none)."""
    stem = os.path.splitext(out)[0]
    return (item.get("arkit_csv") or (stem + ".csv" if args.arkit_files else ""),
            item.get("arkit_json") or (stem + ".json" if args.arkit_files else ""))


def item_outputs(args, item, out_dir: str) -> list:
    """Every file the item writes: its .blend and, for the ARKit target, its CSV/JSON files."""
    out = item_out(item, out_dir)
    if str(item.get("target", args.target)).strip().lower() != "arkit":
        return [out]
    return [out] + [p for p in arkit_files(args, item, out) if p]


def check_collisions(args, items, out_dir: str, takes: bool) -> None:
    """Two items writing one output (or one take) would silently drop one: say which, before baking."""
    from blender_addon import headless
    seen = {}
    for item in items:
        paths = [item["name"]] if takes else [os.path.normcase(os.path.abspath(p))
                                              for p in item_outputs(args, item, out_dir)]
        for target in paths:
            key = target.lower()  # case-insensitive filesystems (macOS, Windows) collide too
            if key in seen:
                first = seen[key]
                what = f"take '{target}'" if takes else target
                headless.fail(f"{os.path.basename(first['audio'])} and {os.path.basename(item['audio'])} would both "
                              f"write {what}: rename one (or give each a 'name' in a manifest)")
            seen[key] = item


def _item_settings(args, item) -> dict:
    """Settings, fps and start frame of one item (its columns override the options); ValueError if bad."""
    from blender_addon import headless
    over = {}
    if "mode" in item:
        mode = str(item["mode"]).lower()
        if mode not in ("per-frame", "compact"):
            raise ValueError(f"mode must be per-frame or compact, got {item['mode']}")
        over["mode"] = "COMPACT" if mode == "compact" else "PER_FRAME"
    if "intensity" in item:
        over["intensity"] = _number(item, "intensity")
    for key in ("style", "jaw", "lips", "upper_face"):
        if key in item:
            over[key] = _number(item, key)
    if "seed" in item:
        over["seed"] = int(_number(item, "seed"))
    if "emotion" in item:
        if not isinstance(item["emotion"], str):
            raise ValueError(f"'emotion' must be text such as 'happy:0.7', got {json.dumps(item['emotion'])}")
        over["emotion"] = item["emotion"]
    settings = headless.settings_from(args, **over)
    fps = _number(item, "fps") if "fps" in item else args.fps
    start_frame = _number(item, "start_frame") if "start_frame" in item else args.start_frame
    headless.check_settings(fps=fps, intensity=settings["intensity"], tolerance_mm=settings["tolerance_mm"],
                            start_frame=start_frame, mode=settings["mode"])
    return settings, fps, start_frame


def _item_target(args, item) -> str:
    """The item's target (column over --target); ValueError naming the bad value and its columns."""
    raw = item.get("target", args.target)
    target = raw.strip().lower() if isinstance(raw, str) else raw
    if target not in TARGETS:
        raise ValueError(f"'target' must be flame, arkit or any, got {json.dumps(raw)}")
    if target != "arkit":
        extra = [k for k in ("arkit_csv", "arkit_json") if k in item]
        if extra:
            raise ValueError(f"'{extra[0]}' goes with target arkit (this item's target is {target})")
    if target != "any":
        extra = [k for k in ("landmarks", "jaw_parts") if k in item]
        if extra:
            raise ValueError(f"'{extra[0]}' goes with target any (this item's target is {target})")
    return target


def _number(item, key) -> float:
    value = item[key]
    if isinstance(value, bool):
        raise ValueError(f"'{key}' must be a number, got {json.dumps(value)}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"'{key}' must be a number, got {json.dumps(value)}") from None


ITEM_ERRORS = (ValueError, RuntimeError, OSError)   # plus SpeechToFaceError: the item fails, the batch goes on


def run_outputs(args, items) -> list[dict]:
    from blender_addon import headless
    from blender_addon.engine import errors
    out_dir = args.out_dir or (os.path.normpath(args.input) + "_baked")
    report = []
    for i, item in enumerate(items, 1):
        out = item_out(item, out_dir)
        tag = f"[{i}/{len(items)}] {item['name']}"
        if all(os.path.isfile(p) for p in item_outputs(args, item, out_dir)) and not args.force:
            print(f"{tag}: skipped (done: {out})", flush=True)
            report.append({"name": item["name"], "status": "skipped", "out": out})
            continue
        t0 = time.perf_counter()
        try:
            if not out.lower().endswith(".blend"):
                raise ValueError(f"'out' must be a .blend file, got {out}")
            target = _item_target(args, item)
            settings, fps, start_frame = _item_settings(args, item)
            done = _bake_item(args, item, target, out, fps, start_frame, settings)
        except (errors.SpeechToFaceError, *ITEM_ERRORS) as exc:
            print(f"{tag}: FAILED: {exc}", flush=True)
            report.append({"name": item["name"], "status": "failed", "error": str(exc), "audio": item["audio"]})
            continue
        dt = time.perf_counter() - t0
        print(f"{tag}: ok, {target}: {done.pop('line')} ({dt:.1f} s) -> {out}", flush=True)
        report.append({"name": item["name"], "status": "ok", "target": target, "out": out, **done,
                       "seconds": round(dt, 3)})
    return report


def _bake_item(args, item, target, out, fps, start_frame, settings) -> dict:
    """One item with its target's headless bake (the functions tools/bake.py and bake_any_head.py run)."""
    from blender_addon import headless
    audio = os.path.abspath(item["audio"])
    blend, object_name = item.get("blend", ""), item.get("object", "")
    mesh = "" if blend else (item.get("mesh") or args.mesh or DEFAULT_HEAD)
    if target == "arkit":
        csv_path, json_path = arkit_files(args, item, out)
        done = headless.bake_arkit_file(args, mesh, audio, out, fps=fps, start_frame=start_frame, blend=blend,
                                        object_name=object_name, csv_path=csv_path, json_path=json_path, **settings)
        return {"line": f"{done['frames']} frames on '{done['object']}', {done['report']}", "frames": done["frames"],
                "start_frame": int(start_frame), "trained": done["trained"], "arkit": done["report"],
                **({"arkit_csv": csv_path} if csv_path else {}), **({"arkit_json": json_path} if json_path else {})}
    if target == "any":
        landmarks = headless.read_landmarks(item["landmarks"]) if item.get("landmarks") else None
        parts = [p.strip() for p in item.get("jaw_parts", "").split(",") if p.strip()]
        result, reg = headless.bake_any_file(args, mesh, audio, out, fps=fps, start_frame=start_frame, blend=blend,
                                             object_name=object_name, landmarks=landmarks, jaw_parts=parts, **settings)
        fitted = f", fitted in {reg.seconds:.1f} s ({reg.fit_face_mm:.2f} mm)" if reg is not None else ""
        line = f"{result.frames} frames from frame {result.start_frame}{fitted}"
    else:
        result = headless.bake_file(args, mesh, audio, out, fps=fps, start_frame=start_frame, blend=blend,
                                    object_name=object_name, **settings)
        line = f"{result.frames} frames from frame {result.start_frame}"
    return {"line": line, "frames": result.frames, "start_frame": result.start_frame, "trained": result.trained,
            "warnings": result.warnings}


def run_takes(args, items) -> list[dict]:
    """All clips as takes on one head in one .blend (one Action per clip); targets flame and any."""
    from blender_addon import any_head, api, bake, headless
    from blender_addon.engine import errors
    out = os.path.abspath(args.takes)
    try:
        headless.check_writable(out, "--takes")
        if os.path.isfile(out) and not args.force:
            scene = headless.open_blend(out)
            obj = headless.pick_object(args.object)
        else:
            if args.object:
                raise errors.SpeechToFaceError(f"--object names a head inside the existing {out}; it is not there yet.")
            scene = headless.new_scene()
            mesh = args.mesh or DEFAULT_HEAD
            obj = headless.import_mesh(mesh) if args.target == "any" else api.load_head(mesh)
            api.set_fps(scene, args.fps or 30.0)
        if args.target == "any" and not any_head.is_registered(obj):
            print(any_head.register(obj).summary(), flush=True)   # once for every take
    except errors.SpeechToFaceError as exc:
        headless.fail(str(exc))
    report = []
    for i, item in enumerate(items, 1):
        tag = f"[{i}/{len(items)}] {item['name']}"
        if item["name"] in bake.takes(obj) and not args.force:
            print(f"{tag}: skipped (take exists in {out})", flush=True)
            report.append({"name": item["name"], "status": "skipped", "out": out})
            continue
        t0 = time.perf_counter()
        try:
            target = _item_target(args, item)
            if target != args.target:
                raise ValueError(f"--takes puts every clip on one head as target {args.target}; this item's target "
                                 f"is {target} (bake it without --takes)")
            settings, _fps, start_frame = _item_settings(args, item)
            result = api.bake_one_take(obj, os.path.abspath(item["audio"]), scene=scene,
                                       start_frame=int(start_frame), take=item["name"],
                                       bake_fn=any_head.bake if target == "any" else None, **settings)
            # Save after every clip: an interrupted batch keeps what it finished.
            headless.save_blend(out, compress=args.compress, pack_audio=not args.no_pack_audio)
        except (errors.SpeechToFaceError, *ITEM_ERRORS) as exc:
            print(f"{tag}: FAILED: {exc}", flush=True)
            report.append({"name": item["name"], "status": "failed", "error": str(exc), "audio": item["audio"]})
            continue
        dt = time.perf_counter() - t0
        action = bake.takes(obj)[result.take]["action"]
        print(f"{tag}: ok, {result.frames} frames -> Action '{action}' ({dt:.1f} s)", flush=True)
        report.append({"name": item["name"], "status": "ok", "out": out, "action": action,
                       "frames": result.frames, "seconds": round(dt, 3), "trained": result.trained})
    return report


def main(argv=None) -> int:
    from blender_addon import headless
    args = parser().parse_args(headless.script_args(argv))
    if args.takes and not args.takes.lower().endswith(".blend"):
        headless.fail(f"--takes must name a .blend file, got {args.takes}")
    if args.takes and args.target == "arkit":
        headless.fail("--takes bakes takes on one head (targets flame and any); the ARKit target keys a character's "
                      "own ARKit shape keys, one Action per character: bake ARKit items without --takes")
    if args.takes and args.arkit_files:
        headless.fail("--arkit-files goes with ARKit items, which are baked without --takes")
    items = read_items(args.input)
    check_collisions(args, items, args.out_dir or (os.path.normpath(args.input) + "_baked"), bool(args.takes))
    summary_dir = os.path.dirname(os.path.abspath(args.takes)) if args.takes else (
        args.out_dir or (os.path.normpath(args.input) + "_baked"))
    summary_path = os.path.join(summary_dir, "batch_summary.json")
    headless.check_writable(summary_path, "the batch summary")
    print(f"batch: {len(items)} item(s) from {args.input}", flush=True)
    report = run_takes(args, items) if args.takes else run_outputs(args, items)
    counts = {s: sum(r["status"] == s for r in report) for s in ("ok", "skipped", "failed")}
    os.makedirs(summary_dir, exist_ok=True)
    tmp = summary_path + f".{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"input": os.path.abspath(args.input), **counts, "items": report}, fh, indent=2)
    os.replace(tmp, summary_path)
    print(f"batch done: {counts['ok']} ok, {counts['skipped']} skipped, {counts['failed']} failed", flush=True)
    for r in report:
        if r["status"] == "failed":
            print(f"  failed: {r['name']}: {r['error']}")
    if any(not r.get("trained", True) for r in report):
        print("note: RANDOM-INITIALISED weights were used (no trained weights installed): motion is meaningless")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    from blender_addon import headless as _headless
    code = _headless.run_main(main, interrupted="interrupted (finished items are kept; the item in progress "
                                                "was not written)")
    sys.stdout.flush()
    sys.exit(code)
