"""Render a baked .blend to an MP4 with its sound, plus a contact-sheet PNG, headless on CPU.

    python tools/preview.py baked.blend --out-dir previews/ [--profile] [--height 360]
    blender -b -P tools/preview.py -- baked.blend --out-dir previews/ --profile

Frames are rendered once with Workbench (OpenGL through Mesa's software path when there is no
GPU; --engine eevee also works but is ~20x slower here) to PNGs, then Blender's own FFmpeg
muxes them with the scene's sound strips (H.264 + AAC) through the sequencer, so what you hear
is exactly what plays in the .blend. The camera is placed from the head's landmarks (nose,
eyes, chin), so any head orientation or unit works. --profile adds a linked copy of the head
seen from the side (same mesh, same animation) next to the front view.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def parser():
    ap = argparse.ArgumentParser(prog="preview.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("blend", help="a .blend baked by Speech to Face")
    ap.add_argument("--object", default="", help="head object (default: the baked one)")
    ap.add_argument("--take", default="", help="which take's frame range (default: the assigned one)")
    ap.add_argument("--out-dir", default="", help="output folder (default: beside the .blend)")
    ap.add_argument("--name", default="", help="output base name (default: the .blend's name)")
    ap.add_argument("--profile", action="store_true", help="add a side view next to the front view")
    ap.add_argument("--height", type=int, default=360, help="video height in pixels (default 360)")
    ap.add_argument("--frames", default="", help="limit to FIRST:LAST (scene frames)")
    ap.add_argument("--engine", choices=["workbench", "eevee"], default="workbench")
    ap.add_argument("--sheet", type=int, default=12, help="frames on the contact sheet (default 12)")
    ap.add_argument("--sheet-columns", type=int, default=6)
    ap.add_argument("--no-video", action="store_true", help="only the contact sheet")
    return ap


def _vec(v):
    from mathutils import Vector
    return Vector((float(v[0]), float(v[1]), float(v[2])))


def face_frame(obj):
    """World-space centre, front, up and size of the head, from its 68 landmarks at rest."""
    import numpy as np
    from blender_addon import bake
    from blender_addon.engine import flame
    rest = bake.neutral_vertices(obj)
    lmk = flame.landmarks(rest)
    m = obj.matrix_world
    world = lambda p: m @ _vec(p)  # noqa: E731
    nose, chin = world(lmk[30]), world(lmk[8])
    ears = (world(lmk[0]) + world(lmk[16])) / 2
    eyes = world(lmk[36:48].mean(axis=0))
    front = (nose - ears).normalized()
    up = (eyes - chin)
    up = (up - front * up.dot(front)).normalized()
    corners = [m @ _vec(c) for c in (rest.min(axis=0), rest.max(axis=0))]
    size = (corners[1] - corners[0]).length / math.sqrt(3)
    centre = (eyes + chin) / 2
    return centre, front, up, size, float(np.linalg.norm(lmk[16] - lmk[0]))


def setup_camera(scene, obj, profile: bool, height: int):
    """Orthographic camera facing the face; with ``profile`` a turned linked copy beside it."""
    import bpy
    from mathutils import Matrix
    centre, front, up, size, _ = face_frame(obj)
    right = up.cross(front).normalized()  # the camera's +X when it looks back along -front
    centre = centre + up * (size * 0.12)  # frame the whole head, not just the face
    aspect = 1.0
    if profile:
        dup = obj.copy()  # linked: same mesh data, so the same shape keys and Action
        dup.name = obj.name + "_profile"
        scene.collection.objects.link(dup)
        offset = right * (size * 1.25)
        turn = Matrix.Rotation(math.radians(90), 4, up)  # its side faces the camera
        dup.matrix_world = Matrix.Translation(centre + offset) @ turn @ Matrix.Translation(-centre) @ obj.matrix_world
        centre = centre + offset / 2
        aspect = 2.0
    cam_data = bpy.data.cameras.new("S2F_preview_camera")
    cam_data.type = "ORTHO"
    cam_data.ortho_scale = size * (1.15 if profile else 1.1) * aspect
    cam_data.clip_start = size * 0.01
    cam_data.clip_end = size * 20
    cam = bpy.data.objects.new("S2F_preview_camera", cam_data)
    scene.collection.objects.link(cam)
    basis = Matrix((right, up, front)).transposed()  # columns: camera X, Y, Z in world space
    cam.matrix_world = Matrix.Translation(centre + front * size * 4) @ basis.to_4x4()
    scene.camera = cam
    scene.render.resolution_y = height - height % 2
    scene.render.resolution_x = int(round(height * aspect)) // 2 * 2
    scene.render.resolution_percentage = 100


def setup_look(scene, engine: str):
    import bpy
    scene.render.engine = "BLENDER_EEVEE" if engine == "eevee" else "BLENDER_WORKBENCH"
    world = bpy.data.worlds.new("S2F_preview_world")
    world.color = (0.18, 0.18, 0.2)
    scene.world = world
    shading = scene.display.shading
    shading.light = "STUDIO"
    shading.color_type = "SINGLE"
    shading.single_color = (0.8, 0.62, 0.52)
    shading.show_cavity = True
    scene.render.film_transparent = False
    scene.view_settings.view_transform = "Standard"
    if engine == "eevee" and not any(o.type == "LIGHT" for o in scene.objects):
        light = bpy.data.objects.new("S2F_preview_light", bpy.data.lights.new("S2F_preview_light", "SUN"))
        scene.collection.objects.link(light)
        light.rotation_euler = scene.camera.rotation_euler


def render_frames(scene, first: int, last: int, folder: str) -> list:
    import bpy
    scene.frame_start, scene.frame_end = first, last
    s = scene.render.image_settings
    if hasattr(s, "media_type"):
        s.media_type = "IMAGE"
    s.file_format = "PNG"
    s.color_mode = "RGB"
    scene.render.filepath = os.path.join(folder, "frame_")
    scene.render.use_file_extension = True
    bpy.ops.render.render(animation=True)
    return [os.path.join(folder, f"frame_{f:04d}.png") for f in range(first, last + 1)]


def contact_sheet(frames: list, numbers: list, out_png: str, count: int, columns: int) -> None:
    """Evenly spaced frames tiled left-to-right, top-to-bottom."""
    import bpy
    import numpy as np
    pick = np.unique(np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int))
    tiles = []
    for i in pick:
        img = bpy.data.images.load(frames[i])
        w, h = img.size
        px = np.empty(w * h * 4, np.float32)
        img.pixels.foreach_get(px)
        tiles.append(px.reshape(h, w, 4))
        bpy.data.images.remove(img)
    h, w = tiles[0].shape[:2]
    cols = min(columns, len(tiles))
    rows = int(math.ceil(len(tiles) / cols))
    pad = 4
    sheet = np.ones(((h + pad) * rows + pad, (w + pad) * cols + pad, 4), np.float32)
    sheet[..., :3] = 0.08
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        y0 = sheet.shape[0] - (r + 1) * (h + pad)   # Blender pixels start at the bottom row
        x0 = pad + c * (w + pad)
        sheet[y0:y0 + h, x0:x0 + w] = tile
    img = bpy.data.images.new("S2F_contact_sheet", sheet.shape[1], sheet.shape[0])
    img.pixels.foreach_set(sheet.ravel())
    img.filepath_raw = out_png
    img.file_format = "PNG"
    img.save()
    print(f"contact sheet: frames {[numbers[i] for i in pick]}")


def encode_video(src_scene, frames: list, first: int, out_mp4: str) -> None:
    """The rendered PNGs + the scene's sound strips -> H.264/AAC MP4, with Blender's FFmpeg."""
    import bpy
    from blender_addon import compat
    scene = bpy.data.scenes.new("S2F_preview_video")
    scene.render.fps, scene.render.fps_base = src_scene.render.fps, src_scene.render.fps_base
    scene.render.resolution_x = src_scene.render.resolution_x
    scene.render.resolution_y = src_scene.render.resolution_y
    scene.render.resolution_percentage = 100
    scene.frame_start, scene.frame_end = first, first + len(frames) - 1
    se = scene.sequence_editor_create()
    strips = se.strips if hasattr(se, "strips") else se.sequences
    img = strips.new_image("frames", frames[0], 1, first)
    for f in frames[1:]:
        img.elements.append(os.path.basename(f))
    temps = []
    for snd in compat.sound_strips(src_scene):
        if snd.mute or snd.sound is None:
            continue
        path = bpy.path.abspath(snd.sound.filepath, library=snd.sound.library)
        if snd.sound.packed_file is not None:
            fd, path = tempfile.mkstemp(suffix=os.path.splitext(snd.sound.filepath)[1] or ".wav")
            with os.fdopen(fd, "wb") as fh:
                fh.write(snd.sound.packed_file.data)
            temps.append(path)
        new = strips.new_sound(snd.name, path, 2 + len(temps), int(snd.frame_start))
        new.frame_offset_start = snd.frame_offset_start
        new.frame_offset_end = snd.frame_offset_end
        new.volume = snd.volume
        if hasattr(snd, "sound_offset"):
            new.sound_offset = snd.sound_offset
    compat.set_ffmpeg_output(scene)
    ff = scene.render.ffmpeg
    ff.format = "MPEG4"
    ff.codec = "H264"
    ff.constant_rate_factor = "MEDIUM"
    ff.audio_codec = "AAC"
    ff.audio_bitrate = 128
    ff.audio_mixrate = 48000
    ff.audio_channels = "MONO"
    scene.render.use_sequencer = True
    scene.render.filepath = out_mp4
    scene.render.use_file_extension = False
    with bpy.context.temp_override(scene=scene):
        bpy.ops.render.render(animation=True, scene=scene.name)
    for t in temps:
        os.unlink(t)


def main(argv=None) -> int:
    from blender_addon import bake, compat, headless
    from blender_addon.engine import errors
    args = parser().parse_args(headless.script_args(argv))
    try:
        scene = headless.open_blend(args.blend)
        obj = headless.pick_object(args.object)
        records = bake.takes(obj)
        if not records:
            raise errors.SpeechToFaceError(f"'{obj.name}' has no Speech to Face bake.")
        take = args.take
        if not take:
            current, _ = compat.assigned(obj.data.shape_keys)
            take = next((t for t, r in records.items() if current is not None and r["action"] == current.name),
                        next(iter(records)))
        if take not in records:
            raise errors.SpeechToFaceError(f"No take '{take}' (takes: {', '.join(records)}).")
        rec = records[take]
        first, last = rec["start_frame"], rec["start_frame"] + rec["frames"] - 1
        if args.frames:
            a, b = (int(x) for x in args.frames.split(":"))
            first, last = max(first, a), min(last, b)
            if first > last:
                raise errors.SpeechToFaceError(f"--frames {args.frames} is outside the bake ({rec['start_frame']}-"
                                               f"{rec['start_frame'] + rec['frames'] - 1}).")
    except (errors.SpeechToFaceError, ValueError) as exc:
        headless.fail(str(exc))
    out_dir = os.path.abspath(args.out_dir or os.path.dirname(os.path.abspath(args.blend)))
    os.makedirs(out_dir, exist_ok=True)
    name = args.name or os.path.splitext(os.path.basename(args.blend))[0]
    setup_camera(scene, obj, args.profile, args.height)
    setup_look(scene, args.engine)
    folder = tempfile.mkdtemp(prefix="s2f_preview_")
    try:
        frames = render_frames(scene, first, last, folder)
        sheet = os.path.join(out_dir, f"{name}_sheet.png")
        contact_sheet(frames, list(range(first, last + 1)), sheet, args.sheet, args.sheet_columns)
        print(f"wrote {sheet}")
        if not args.no_video:
            mp4 = os.path.join(out_dir, f"{name}.mp4")
            encode_video(scene, frames, first, mp4)
            print(f"wrote {mp4} ({os.path.getsize(mp4) / 1e6:.2f} MB, frames {first}-{last}, sound muxed)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if not rec.get("trained", True):
        print("note: this bake used RANDOM-INITIALISED weights: the motion is meaningless")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.exit(code)
