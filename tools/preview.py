"""Render a baked .blend to an MP4 with its sound, plus a contact-sheet PNG, headless on CPU.

    python tools/preview.py baked.blend --out-dir previews/ [--profile] [--height 360]
    blender -b -P tools/preview.py -- baked.blend --out-dir previews/ --profile
    python tools/preview.py scene.blend --panel-png panel.png    (a drawing of the sidebar panel)
    python tools/preview.py --sample-scene --panel-png docs/panel.png      (the README's picture)

Frames are drawn by a numpy z-buffer rasteriser (tools/rasterise.py, smooth-shaded; about 10x
faster than Workbench through Mesa's software OpenGL, which --engine workbench still uses, as
does the slower --engine eevee) from the head's evaluated mesh at every frame, so shape keys,
Actions and modifiers all show. Blender's own FFmpeg then muxes them with the scene's sound
strips (H.264 + AAC) through the sequencer, so what you hear is exactly what plays in the
.blend. Blender's per-frame log is kept quiet; a progress bar shows instead. The camera is placed from the head's landmarks (nose,
eyes, chin), so any head orientation or unit works. --profile adds a linked copy of the head
seen from the side (same mesh, same animation) next to the front view.

--panel-png draws the add-on's sidebar panel for the .blend's scene: the panel's real draw()
runs against a recording layout, and the recorded rows are drawn with Pillow in Blender's
default dark theme. It is a faithful drawing of what the panel shows, not a screenshot
(the bpy wheel has no window to capture).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
from tools.blender_entry import require_bpy  # noqa: E402

require_bpy(__file__)


def parser():
    ap = argparse.ArgumentParser(prog="preview.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("blend", nargs="?", default="", help="a .blend baked by Speech to Face")
    ap.add_argument("--object", default="", help="head object (default: the baked one)")
    ap.add_argument("--take", default="", help="which take's frame range (default: the assigned one)")
    ap.add_argument("--out-dir", default="", help="output folder (default: beside the .blend)")
    ap.add_argument("--name", default="", help="output base name (default: the .blend's name)")
    ap.add_argument("--profile", action="store_true", help="add a side view next to the front view")
    ap.add_argument("--framing", choices=["face", "head"], default="face",
                    help="face: brows to chin fill the view (default); head: the whole head")
    ap.add_argument("--closeups", action="store_true",
                    help="also <name>_mouth.png and <name>_eyes.png: close-up sheets of the sheet's frames, "
                         "one of them swapped for the widest opening / the deepest blink (fast engine)")
    ap.add_argument("--height", type=int, default=360, help="video height in pixels (default 360)")
    ap.add_argument("--frames", default="", help="limit to FIRST:LAST (scene frames)")
    ap.add_argument("--engine", choices=["fast", "workbench", "eevee"], default="fast",
                    help="fast: numpy rasteriser (default); workbench / eevee: Blender's renderers")
    ap.add_argument("--sheet", type=int, default=12, help="frames on the contact sheet (default 12)")
    ap.add_argument("--sheet-columns", type=int, default=6)
    ap.add_argument("--no-video", action="store_true", help="only the contact sheet")
    ap.add_argument("--panel-png", default="", help="instead: draw the sidebar panel for this scene to PNG")
    ap.add_argument("--sample-scene", action="store_true",
                    help="with --panel-png, no .blend: the sample head with 3.12 s of the sample speech "
                         "as strip 'line_hello' at 24 fps, baked once (the README's picture)")
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


# What each framing shows; the view is square per head view (the profile adds a second square).
FRAMINGS = ("head", "face", "mouth", "eyes")


def view_frame(obj, framing: str):
    """World-space centre, right, up, front and width of a square view on the head."""
    from blender_addon import bake
    from blender_addon.engine import flame
    centre, front, up, size, _ = face_frame(obj)
    right = up.cross(front).normalized()  # the camera's +X when it looks back along -front
    if framing == "head":
        return centre + up * (size * 0.12), right, up, front, size * 1.1
    lmk = flame.landmarks(bake.neutral_vertices(obj))
    m = obj.matrix_world
    world = lambda i: m @ _vec(lmk[i].mean(axis=0) if hasattr(i, "__len__") else lmk[i])  # noqa: E731
    if framing == "face":  # brows to chin, cheek to cheek, with room for an open jaw
        brows, chin = world(list(range(17, 27))), world(8)
        width = (world(16) - world(0)).length
        height = (brows - chin).dot(up)
        return (brows + chin) / 2 - up * (height * 0.06), right, up, front, max(width * 1.05, height * 1.35)
    if framing == "mouth":  # the lips with room for a wide opening
        width = (world(54) - world(48)).length * 2.1
        return world(list(range(48, 68))) - up * (width * 0.12), right, up, front, width
    if framing == "eyes":   # both eyes and brows
        return world(list(range(17, 27)) + list(range(36, 48))), right, up, front, (world(45) - world(36)).length * 1.2
    raise ValueError(f"framing must be one of {', '.join(FRAMINGS)}, got {framing}")


def setup_camera(scene, obj, profile: bool, height: int, framing: str = "head"):
    """Orthographic camera facing the face; with ``profile`` a turned linked copy beside it."""
    import bpy
    from mathutils import Matrix
    _, _, _, size, _ = face_frame(obj)
    centre, right, up, front, width = view_frame(obj, framing)
    aspect = 1.0
    if profile:
        dup = obj.copy()  # linked: same mesh data, so the same shape keys and Action
        dup.name = obj.name + "_profile"
        scene.collection.objects.link(dup)
        offset = right * (width * 1.05)
        turn = Matrix.Rotation(math.radians(90), 4, up)  # its side faces the camera
        dup.matrix_world = Matrix.Translation(centre + offset) @ turn @ Matrix.Translation(-centre) @ obj.matrix_world
        centre = centre + offset / 2
        aspect = 2.0
    cam_data = bpy.data.cameras.new("S2F_preview_camera")
    cam_data.type = "ORTHO"
    cam_data.ortho_scale = width * (1.05 if profile else 1.0) * aspect
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
    with _Quiet():
        bpy.ops.render.render(animation=True)
    return [os.path.join(folder, f"frame_{f:04d}.png") for f in range(first, last + 1)]


def camera_frame(obj, profile: bool, height: int, framing: str = "head"):
    """What setup_camera builds, as numbers: centre, right, up, front, world units per pixel,
    the image size, and the profile copy's placement (or None)."""
    centre, right, up, front, width = view_frame(obj, framing)
    aspect = 2.0 if profile else 1.0
    h = height - height % 2
    w = int(round(height * aspect)) // 2 * 2
    per_pixel = width * (1.05 if profile else 1.0) * aspect / w
    offset = right * (width * 1.05) if profile else None
    return centre, right, up, front, per_pixel, w, h, offset


def render_frames_fast(scene, obj, first: int, last: int, folder: str, profile: bool, height: int,
                       framing: str = "head", only=None) -> tuple:
    """Draw every frame (or the frames in ``only``) of the evaluated head with
    tools/rasterise.py; returns (PNGs, size)."""
    import bpy
    import numpy as np
    from blender_addon import bake
    from blender_addon.engine import flame
    from tools.rasterise import BACKGROUND, Rasteriser, write_png
    centre, right, up, front, per_pixel, w, h, _ = camera_frame(obj, profile, height, framing)
    numbers = list(only) if only is not None else list(range(first, last + 1))
    basis = np.array([tuple(right), tuple(up), tuple(front)])          # world -> camera rows
    view_w = w // 2 if profile else w
    mesh = obj.data
    mesh.calc_loop_triangles()
    tris = mesh.loop_triangles
    faces = np.empty(len(tris) * 3, np.int32)
    tris.foreach_get("vertices", faces)
    raster = Rasteriser(faces.reshape(-1, 3), view_w, h)
    mw = np.array(obj.matrix_world)
    c = np.array(tuple(centre))
    views = [np.eye(3)]
    if profile:  # the side view: the head turned 90 degrees about "up" (its face looks right)
        views.append(np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]]))
    # Close framings: the side view's face profile sits right of the middle of its half, so the
    # jaw's angle below the ear shows too.
    side_shift = 0.0
    if profile and framing != "head":
        nose = (np.asarray(flame.landmarks(bake.neutral_vertices(obj))[30], np.float64) @ mw[:3, :3].T + mw[:3, 3]
                - c) @ basis.T @ views[1].T
        side_shift = 0.3 * view_w * per_pixel - nose[0]
    depsgraph = bpy.context.evaluated_depsgraph_get()
    count = len(numbers)

    def world_at(frame: int) -> np.ndarray:
        return evaluated_vertices(scene, obj, frame, depsgraph) @ mw[:3, :3].T + mw[:3, 3]

    def to_screen(world: np.ndarray, turn: np.ndarray):
        cam = (world - c) @ basis.T @ turn.T                              # x right, y up, z to camera
        if turn is not views[0]:
            cam[:, 0] += side_shift
        screen = np.stack([cam[:, 0] / per_pixel + view_w / 2, h / 2 - cam[:, 1] / per_pixel, cam[:, 2]], axis=1)
        return screen, cam

    # Speech moves the lower face; most of the head stays put. A first pass finds the vertices
    # that move by more than a twentieth of a pixel and the area around the lips (where the
    # inside of the head shows); the still part is drawn once per view and reused every frame.
    rest = bake.neutral_vertices(obj).astype(np.float64) @ mw[:3, :3].T + mw[:3, 3]
    moved = np.zeros(len(rest))
    boxes = [np.array([np.inf, np.inf, -np.inf, -np.inf]) for _ in views]
    for k, frame in enumerate(numbers):
        world = world_at(frame)
        moved = np.maximum(moved, np.abs(world - rest).max(axis=1))
        for i, turn in enumerate(views):
            lips = flame.landmarks(to_screen(world, turn)[0])[48:68, :2]
            margin = 0.5 * (lips[:, 0].max() - lips[:, 0].min())
            boxes[i] = np.concatenate([np.minimum(boxes[i][:2], lips.min(axis=0) - margin),
                                       np.maximum(boxes[i][2:], lips.max(axis=0) + margin)])
        _progress("reading frames", k + 1, count)
    still = moved <= 0.05 * per_pixel
    still_tris = still[raster.faces].all(axis=1)
    moving_tris = np.flatnonzero(~still_tris)
    layers = []
    for i, turn in enumerate(views):
        screen, cam = to_screen(rest, turn)
        image = np.empty((h, view_w, 3), np.float32)
        image[:] = BACKGROUND
        depth = np.full((h, view_w), -np.inf, np.float32)
        raster.draw(image, screen, raster.vertex_normals(cam), inside_box=tuple(boxes[i]),
                    depth_buffer=depth, triangles=np.flatnonzero(still_tris))
        layers.append((image, depth))

    def draw(world: np.ndarray, path: str) -> str:
        frame_image = np.empty((h, w, 3), np.float32)
        for i, turn in enumerate(views):
            screen, cam = to_screen(world, turn)
            image, depth = frame_image[:, i * view_w:(i + 1) * view_w], layers[i][1].copy()
            image[:] = layers[i][0]
            raster.draw(image, screen, raster.vertex_normals(cam), inside_box=tuple(boxes[i]),
                        depth_buffer=depth, triangles=moving_tris)
        write_png(path, frame_image)
        return path

    # Blender evaluates the mesh on this thread; numpy and zlib draw and write on two threads.
    pending, paths = [], []
    with ThreadPoolExecutor(2) as pool:
        for frame in numbers:
            pending.append(pool.submit(draw, world_at(frame), os.path.join(folder, f"frame_{frame:04d}.png")))
            while pending and (pending[0].done() or len(pending) > 4):
                paths.append(pending.pop(0).result())
                _progress("drawing frames", len(paths), count)
        for job in pending:
            paths.append(job.result())
            _progress("drawing frames", len(paths), count)
    return paths, (w, h)


def _progress(what: str, done: int, total: int) -> None:
    """One line that fills up (on a terminal), or a line per 10 % (in a log)."""
    if sys.stderr.isatty():
        bar = "#" * int(30 * done / total)
        sys.stderr.write(f"\r{what} [{bar:<30}] {done}/{total}" + ("\n" if done == total else ""))
        sys.stderr.flush()
    elif done == total or (10 * done) // total != (10 * (done - 1)) // total:
        print(f"{what}: {done}/{total}", flush=True)


class _Quiet:
    """Silences Blender's own per-frame log and GPU warnings (file descriptors 1 and 2) during a
    render; what it printed is shown if the render fails."""

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self.log = tempfile.TemporaryFile()
        self.saved = [os.dup(1), os.dup(2)]
        os.dup2(self.log.fileno(), 1)
        os.dup2(self.log.fileno(), 2)
        return self

    def __exit__(self, kind, exc, tb):
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        for fd in self.saved:
            os.close(fd)
        if kind is not None:
            self.log.seek(0)
            sys.stderr.write(self.log.read().decode(errors="replace")[-4000:])
        self.log.close()
        return False


def evaluated_vertices(scene, obj, frame: int, depsgraph):
    """(V, 3) float64 object-space vertices of ``obj`` with its shape keys evaluated at ``frame``."""
    import numpy as np
    scene.frame_set(frame)
    evaluated = obj.evaluated_get(depsgraph)
    me = evaluated.to_mesh()
    co = np.empty(len(me.vertices) * 3, np.float32)
    me.vertices.foreach_get("co", co)
    evaluated.to_mesh_clear()
    return co.reshape(-1, 3).astype(np.float64)


def _swap_in(picked: list, frame: int) -> list:
    """``picked`` with the pick nearest ``frame`` replaced by it (unless it is already there)."""
    if frame in picked:
        return picked
    nearest = min(range(len(picked)), key=lambda i: abs(picked[i] - frame))
    return sorted(picked[:nearest] + [frame] + picked[nearest + 1:])


def with_deepest_blink(scene, obj, first: int, last: int, picked: list) -> list:
    """``picked`` with the pick nearest the frame whose eyelids are most closed replaced by it."""
    import bpy
    import numpy as np
    from blender_addon.engine import flame
    depsgraph = bpy.context.evaluated_depsgraph_get()
    openness = []
    for frame in range(first, last + 1):
        lmk = flame.landmarks(evaluated_vertices(scene, obj, frame, depsgraph))
        # upper-lid landmarks 37, 38 / 43, 44 over lower-lid 41, 40 / 47, 46 (iBUG-68)
        openness.append(np.linalg.norm(lmk[[37, 38, 43, 44]] - lmk[[41, 40, 47, 46]], axis=1).mean())
    return _swap_in(picked, first + int(np.argmin(openness)))


def with_widest_opening(scene, obj, first: int, last: int, picked: list) -> list:
    """``picked`` with the pick nearest the frame whose lips are furthest apart replaced by it."""
    import bpy
    import numpy as np
    from core import lip_aperture
    depsgraph = bpy.context.evaluated_depsgraph_get()
    # the mesh's true aperture: independent of how the head is placed in its object space
    widest = [float(lip_aperture.aperture(evaluated_vertices(scene, obj, frame, depsgraph)))
              for frame in range(first, last + 1)]
    return _swap_in(picked, first + int(np.argmax(widest)))


def sheet_picks(total: int, count: int) -> list:
    """Indices of ``count`` evenly spaced frames out of ``total``."""
    import numpy as np
    return [int(i) for i in np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(int))]


def contact_sheet(frames: list, numbers: list, out_png: str, count: int, columns: int) -> None:
    """Evenly spaced frames tiled left-to-right, top-to-bottom."""
    import bpy
    import numpy as np
    pick = sheet_picks(len(frames), count)
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
    with bpy.context.temp_override(scene=scene), _Quiet():
        bpy.ops.render.render(animation=True, scene=scene.name)
    for t in temps:
        os.unlink(t)


# --- drawing of the sidebar panel ----------------------------------------------------------------

class _Recorder:
    """Stands in for bpy's UILayout: records what the panel's draw() asks for."""

    def __init__(self, kind="column", **kw):
        self.kind, self.kw, self.items = kind, kw, []
        self.enabled, self.scale_y, self.alert = True, 1.0, False

    def _child(self, kind, **kw):
        child = _Recorder(kind, **kw)
        self.items.append(child)
        return child

    def column(self, align=False, heading=""):
        return self._child("column", heading=heading)

    def row(self, align=False, heading=""):
        return self._child("row", heading=heading)

    def box(self):
        return self._child("box")

    def separator(self, factor=1.0):
        self.items.append(("sep",))

    def label(self, text="", icon="NONE"):
        self.items.append(("label", text, icon))

    def prop(self, data, name, text=None, expand=False, slider=False, **_):
        rna = data.bl_rna.properties[name]
        label = rna.name if text is None else text
        value = getattr(data, name)
        if rna.type == "ENUM":
            items = [(i.identifier, i.name) for i in rna.enum_items] or []
            if value not in dict(items):  # dynamic items (the back ends): Blender's own name for the value
                import bpy
                items.append((value, bpy.types.UILayout.enum_item_name(data, name, value) or value))
            self.items.append(("enum", label, items, value, expand))
        elif rna.type == "BOOLEAN":
            self.items.append(("bool", label, bool(value)))
        elif rna.type in ("FLOAT", "INT"):
            text_value = f"{value:.{rna.precision}f}" if rna.type == "FLOAT" else str(value)
            frac = None
            if slider and rna.type == "FLOAT":
                hi = rna.soft_max if rna.soft_max < 1e30 else rna.hard_max
                frac = (value - rna.soft_min) / max(hi - rna.soft_min, 1e-9)
            self.items.append(("number", label, text_value, frac))
        else:
            self.items.append(("text", label, str(value), rna.subtype))

    def operator(self, idname, text="", icon="NONE"):
        if not text:  # Blender shows the operator's label ("Remove Bake"), not its id
            import bpy
            module, op = idname.split(".")
            text = getattr(getattr(bpy.ops, module), op).get_rna_type().name
        self.items.append(("button", text, icon))

    def progress(self, factor=0.0, type="BAR", text=""):
        self.items.append(("progress", factor, text))


_ICONS = {"CHECKMARK": "\u2713", "ERROR": "\u26a0", "SOUND": "\u266a", "TIME": "\u25f7", "INFO": "\u2139",
          "OUTLINER_OB_MESH": "\u25b3", "SHAPEKEY_DATA": "\u25c6", "PLAY_SOUND": "\u25b6", "TRASH": "\u2715"}


def sample_panel_scene(folder: str) -> None:
    """The README's panel scene: sample head, 3.12 s of the sample speech as strip 'line_hello'
    at 24 fps, baked once with the operator (so its report and Remove Bake show)."""
    import wave

    import bpy
    import numpy as np
    from blender_addon import api, compat
    from core import audio
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = 24, 1.0
    speech = audio.load_audio(os.path.join(ROOT, "core", "assets", "audio", "sample_speech.wav"))
    path = os.path.join(folder, "line_hello.wav")
    with wave.open(path, "wb") as w:  # 16 kHz mono 16-bit PCM
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(speech[: int(3.12 * 16000)], -1, 1) * 32767).astype("<i2").tobytes())
    head = api.load_head(os.path.join(ROOT, "core", "assets", "heads", "sample_neutral.ply"), name="Head")
    strip = compat.new_sound_strip(scene, "line_hello", path, 1, 1)
    scene.sequence_editor.active_strip = strip
    bpy.context.view_layer.objects.active = head
    head.select_set(True)
    if bpy.ops.speech_to_face.bake() != {"FINISHED"}:
        raise SystemExit(f"error: the sample bake failed: {scene.speech_to_face.last_report}")


def draw_panel_png(context, out_png: str, width: int = 360, scale: int = 2) -> None:
    import bpy
    from PIL import Image, ImageDraw, ImageFont
    root = _Recorder()
    panel_cls = bpy.types.SPEECHTOFACE_PT_main
    panel_cls.draw(type("PanelStandIn", (), {"layout": root})(), context)  # draw() only reads self.layout

    font_path = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    font = ImageFont.truetype(font_path, 11 * scale)
    bold = ImageFont.truetype(font_path.replace("Sans.ttf", "Sans-Bold.ttf"), 11 * scale)
    bg, widget, text_c, dim, accent = (48, 48, 48), (84, 84, 84), (230, 230, 230), (150, 150, 150), (71, 114, 179)
    W = width * scale
    img = Image.new("RGB", (W, 2000 * scale), (40, 40, 40))
    d = ImageDraw.Draw(img)
    pad, row_h = 10 * scale, 22 * scale
    d.rectangle([0, 0, W, 26 * scale], fill=(61, 61, 61))
    d.text((pad, 6 * scale), "\u25be  Speech to Face", font=bold, fill=text_c)
    y = 34 * scale

    def wrap(text, max_w, f=font):
        words, lines, cur = text.split(), [], ""
        for w in words:
            t = (cur + " " + w).strip()
            if d.textlength(t, font=f) <= max_w:
                cur = t
            else:
                lines.append(cur)
                cur = w
        return lines + ([cur] if cur else [])

    def walk(node, x0, x1, enabled=True):
        nonlocal y
        enabled = enabled and node.enabled
        if node.kind == "box":
            top = y
            y += 4 * scale
            for item in node.items:
                draw_item(item, x0 + 6 * scale, x1 - 6 * scale, enabled)
            d.rectangle([x0, top, x1, y + 2 * scale], outline=(30, 30, 30), width=scale)
            y += 8 * scale
            return
        if node.kw.get("heading"):
            d.text((x0, y + 4 * scale), node.kw["heading"], font=bold, fill=dim)
            y += row_h
        for item in node.items:
            draw_item(item, x0, x1, enabled, node.scale_y)

    def draw_item(item, x0, x1, enabled, sy=1.0):
        nonlocal y
        if isinstance(item, _Recorder):
            walk(item, x0, x1, enabled)
            return
        kind = item[0]
        fg = text_c if enabled else dim
        h = int(row_h * sy)
        if kind == "label":
            icon = _ICONS.get(item[2], "")
            colour = (235, 160, 60) if item[2] == "ERROR" else fg
            lines = wrap((icon + "  " if icon else "") + item[1], x1 - x0)
            for line in lines:
                d.text((x0, y + 4 * scale), line, font=font, fill=colour)
                y += int(row_h * 0.8)
            y += int(row_h * 0.2)
        elif kind == "enum":
            _, label, items, value, expand = item
            if expand:
                n = len(items)
                seg = (x1 - x0) / n
                for k, (ident, name) in enumerate(items):
                    fill = accent if ident == value else widget
                    d.rounded_rectangle([x0 + k * seg, y, x0 + (k + 1) * seg - scale, y + h - 3 * scale],
                                        radius=3 * scale, fill=fill)
                    tw = d.textlength(name, font=font)
                    d.text((x0 + k * seg + (seg - tw) / 2, y + 4 * scale), name, font=font, fill=fg)
            else:
                split = x0 + (x1 - x0) * 0.38
                d.text((x0, y + 4 * scale), label, font=font, fill=fg)
                name = dict(items).get(value, value)
                d.rounded_rectangle([split, y, x1, y + h - 3 * scale], radius=3 * scale, fill=(40, 40, 40))
                d.text((split + 6 * scale, y + 4 * scale), name + "  \u25be", font=font, fill=fg)
            y += h
        elif kind == "number":
            _, label, value, frac = item
            d.rounded_rectangle([x0, y, x1, y + h - 3 * scale], radius=3 * scale, fill=widget)
            if frac is not None:
                d.rounded_rectangle([x0, y, x0 + (x1 - x0) * max(0.02, min(1, frac)), y + h - 3 * scale],
                                    radius=3 * scale, fill=accent)
            d.text((x0 + 6 * scale, y + 4 * scale), label, font=font, fill=fg)
            tw = d.textlength(value, font=font)
            d.text((x1 - tw - 6 * scale, y + 4 * scale), value, font=font, fill=fg)
            y += h
        elif kind == "bool":
            _, label, value = item
            d.rounded_rectangle([x0, y + 3 * scale, x0 + 14 * scale, y + 17 * scale], radius=3 * scale,
                                fill=accent if value else widget)
            if value:
                d.text((x0 + 2 * scale, y + 2 * scale), "\u2713", font=font, fill=(255, 255, 255))
            d.text((x0 + 20 * scale, y + 4 * scale), label, font=font, fill=fg)
            y += h
        elif kind == "text":
            _, label, value, subtype = item
            split = x0 + (x1 - x0) * 0.38
            d.text((x0, y + 4 * scale), label, font=font, fill=fg)
            d.rounded_rectangle([split, y, x1, y + h - 3 * scale], radius=3 * scale, fill=(29, 29, 29))
            shown = value or ("(bundled)" if subtype == "DIR_PATH" else "")
            d.text((split + 6 * scale, y + 4 * scale), shown, font=font, fill=dim if not value else fg)
            y += h
        elif kind == "button":
            _, text, icon = item
            fill = widget if enabled else (60, 60, 60)
            d.rounded_rectangle([x0, y, x1, y + h - 3 * scale], radius=4 * scale, fill=fill)
            label = (_ICONS.get(icon, "") + "  " + text).strip()
            tw = d.textlength(label, font=bold)
            d.text((x0 + (x1 - x0 - tw) / 2, y + (h - 14 * scale) / 2), label, font=bold, fill=fg)
            y += h + 2 * scale
        elif kind == "progress":
            _, factor, text = item
            d.rounded_rectangle([x0, y, x1, y + h - 3 * scale], radius=3 * scale, fill=widget)
            d.rounded_rectangle([x0, y, x0 + (x1 - x0) * factor, y + h - 3 * scale], radius=3 * scale, fill=accent)
            d.text((x0 + 6 * scale, y + 4 * scale), text, font=font, fill=fg)
            y += h
        elif kind == "sep":
            y += 6 * scale
        y += 2 * scale

    walk(root, pad, W - pad)
    img = img.crop((0, 0, W, y + pad))
    img.save(out_png)


def main(argv=None) -> int:
    from blender_addon import bake, compat, headless
    from blender_addon.engine import errors
    args = parser().parse_args(headless.script_args(argv))
    if args.panel_png:
        import blender_addon
        import bpy
        if not args.sample_scene:
            if not args.blend:
                headless.fail("give a .blend, or --sample-scene")
            try:
                headless.open_blend(args.blend)
            except errors.SpeechToFaceError as exc:
                headless.fail(str(exc))
        if not hasattr(bpy.types.Scene, "speech_to_face"):
            blender_addon.register()
        folder = tempfile.mkdtemp(prefix="s2f_panel_")
        try:
            if args.sample_scene:
                sample_panel_scene(folder)
            if args.object:
                bpy.context.view_layer.objects.active = bpy.data.objects[args.object]
            draw_panel_png(bpy.context, args.panel_png)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        print(f"wrote {args.panel_png} (a drawing of the panel's draw() output, not a screenshot)")
        return 0
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
    folder = tempfile.mkdtemp(prefix="s2f_preview_")
    started = time.perf_counter()
    try:
        if args.engine == "fast":
            frames, (width, height) = render_frames_fast(scene, obj, first, last, folder, args.profile, args.height,
                                                         args.framing)
            scene.render.resolution_x, scene.render.resolution_y = width, height
            scene.render.resolution_percentage = 100
        else:
            setup_camera(scene, obj, args.profile, args.height, args.framing)
            setup_look(scene, args.engine)
            print(f"rendering {last - first + 1} frames with {args.engine} ...", flush=True)
            frames = render_frames(scene, first, last, folder)
        drawn = time.perf_counter()
        sheet = os.path.join(out_dir, f"{name}_sheet.png")
        contact_sheet(frames, list(range(first, last + 1)), sheet, args.sheet, args.sheet_columns)
        print(f"wrote {sheet}")
        if args.closeups:
            even = [first + i for i in sheet_picks(last - first + 1, args.sheet)]
            for region, profile in (("mouth", True), ("eyes", False)):
                sub = os.path.join(folder, region)
                os.makedirs(sub)
                # evenly spaced frames rarely catch an open vowel's peak or a blink: show the extreme one
                extreme = with_widest_opening if region == "mouth" else with_deepest_blink
                picked = extreme(scene, obj, first, last, even)
                shots, _ = render_frames_fast(scene, obj, first, last, sub, profile, args.height, region, only=picked)
                out_png = os.path.join(out_dir, f"{name}_{region}.png")
                contact_sheet(shots, picked, out_png, len(shots), args.sheet_columns)
                print(f"wrote {out_png}")
        if not args.no_video:
            mp4 = os.path.join(out_dir, f"{name}.mp4")
            encode_video(scene, frames, first, mp4)
            print(f"wrote {mp4} ({os.path.getsize(mp4) / 1e6:.2f} MB, frames {first}-{last}, sound muxed)")
        print(f"{last - first + 1} frames in {time.perf_counter() - started:.1f} s ({args.engine} engine; "
              f"frames drawn in {drawn - started:.1f} s, then sheet and video)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if not rec.get("trained", True):
        print("note: this bake used RANDOM-INITIALISED weights: the motion is meaningless")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.exit(code)
