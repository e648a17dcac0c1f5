"""Evaluate motion transfer to heads of other topologies: docs/eval/transfer.json and .md.

    python tools/evaluate_transfer.py [--heads all|tiny] [--audio core/assets/audio/sample_speech.wav]
                                      [--out docs/eval/transfer] [--test-heads build/test_heads]

For each test head (tools/make_test_heads.py: a FLAME head remeshed by Blender, then moved to a
random frame and scale):
  * reference: the shipped networks animate the original FLAME head on the audio; a test vertex's
    true motion is that of the FLAME surface point it came from (closest point on the original
    head), expressed in the test head's frame;
  * transfer: the FLAME template is registered to the test head from scratch (no knowledge of
    the frame, the scale or the source), the networks animate the fitted template, and the
    motion is transferred (core.registration + core.transfer);
  * errors in millimetres at FLAME scale, over every vertex and frame: the mean, the mean on the
    mouth and jaw, and on the lips the mean, 99th percentile and maximum ("lips": test vertices
    whose reference point lies on a triangle of FLAME's lip region);
  * the lip maximum split by where a vertex lies: "bridge" vertices (farther than ON_SURFACE_MM
    from the original surface and less than twice as far from one lip as from the other: a
    remesher put them across the mouth slit, where FLAME has no surface, so which lip they
    belong to is a convention) and the rest; where either lip is a valid reference (bridge
    vertices, and vertices within TOUCH_MM of both lips) the error to the nearer lip's motion too;
  * where the worst lip vertex is and why (its lip side against the reference's), and how far the
    fitted template's lip vertices are from their true places (the test heads come from a FLAME
    head, so vertex k of the template belongs at vertex k of that head);
  * --ablation: the same measures with the registration's mouth-rim term off, the lip-side margin
    at 2 and 4 mm, and with the triangles joining the lips at the mouth corners open to both lips.
Registration and binding are timed on this machine (the number of cores is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core import flame, meshio, registration, surface, transfer  # noqa: E402
from core.pipeline import Animator  # noqa: E402

ORACLE_SURE_MM = 3.0   # the reference's own lip rule, fixed whatever core.transfer's setting
TOUCH_MM = 0.5         # a test vertex this close to both original lips may follow either
ON_SURFACE_MM = 0.5    # farther than this from the original surface: the remesher moved the vertex off it
TARGETS = {"mean_mm": 0.3, "lips_max_mm": 1.5, "register_60k_s": 20.0}


def reference_binding(head_vertices, test_points_flame, polys):
    """Ground truth: the surface point of the original FLAME head each test vertex came from.

    The closest point of the original head, except where its lips touch (FLAME's lips even
    overlap a little at rest): there the closest point can lie on the other lip, so the lip is
    settled as ``core.transfer.bind`` settles it, from the test mesh's own connectivity, but
    with the exact surface and the exact frame (an oracle registration). Returns the oracle
    binding, the plain closest-point binding, the other lip's point of each lip vertex with the
    touching flags, and each lip vertex's distance to the upper and the lower lip (metres; inf
    off the lips)."""
    faces = flame.load_topology().faces.astype(np.int64)
    rings = surface.triangle_rings(faces, flame.NUM_VERTICES)
    plain = surface.closest_points(test_points_flame, head_vertices, faces, rings)
    from core import alignment
    oracle = registration.Registration(
        similarity=alignment.Similarity(1.0, np.eye(3), np.zeros(3)), fitted=head_vertices,
        fitted_canonical=head_vertices, rigid_face_mm=0.0, fit_face_mm=0.0, landmarks_from="oracle", seconds=0.0)
    corr = transfer.bind(test_points_flame, polys, oracle, sure_mm=ORACLE_SURE_MM)
    # Test vertices where the original lips touch (both lips within TOUCH_MM of the vertex, e.g.
    # where a remesher fused the slit): either lip is a corresponding point. The other one:
    other_tri, other_bary = corr.triangles.copy(), corr.barycentric.copy()
    touching = np.zeros(len(test_points_flame), bool)
    d_lips = np.full((2, len(test_points_flame)), np.inf)
    lip = np.flatnonzero(corr.lip_side != transfer.FREE)
    if len(lip):
        per = {own: surface.closest_points(test_points_flame[lip], head_vertices, faces, rings, *transfer.lip_masks(own))
               for own in (transfer.UPPER, transfer.LOWER)}
        d_lips[0, lip], d_lips[1, lip] = per[transfer.UPPER][2], per[transfer.LOWER][2]
        touching[lip] = np.maximum(per[transfer.UPPER][2], per[transfer.LOWER][2]) < TOUCH_MM / 1000.0
        for other, own in ((transfer.LOWER, transfer.UPPER), (transfer.UPPER, transfer.LOWER)):
            rows = corr.lip_side[lip] == own
            other_tri[lip[rows]] = per[other][0][rows]
            other_bary[lip[rows]] = per[other][1][rows]
    return corr, plain, (other_tri, other_bary, touching), d_lips


@contextmanager
def corners_shared():
    """Ablation: the triangles joining the lips at the mouth corners open to both lips' bindings."""
    saved = transfer.lip_masks
    label, _ = transfer.lip_labels()
    corners = label[flame.load_topology().faces]

    def masks(own):
        other = transfer.LOWER if own == transfer.UPPER else transfer.UPPER
        return label != other, ~((corners == other).any(1) & ~(corners == own).any(1))
    transfer.lip_masks = masks
    try:
        yield
    finally:
        transfer.lip_masks = saved


@contextmanager
def grown_front():
    """Ablation: the unsure vertices' sides grown from the sure ones vertex by vertex (each takes
    the majority side of its decided neighbours, round after round), the rule before the
    diffused score."""
    saved = transfer._diffuse_side

    def grow(score, unsure, edges, **_):
        side = np.sign(np.clip(score, -1.0, 1.0))
        side[unsure] = 0.0
        todo = unsure.copy()
        a, b = edges[:, 0], edges[:, 1]
        n = len(side)
        while todo.any():
            votes = (np.bincount(a, weights=side[b], minlength=n) + np.bincount(b, weights=side[a], minlength=n))
            heard = (np.bincount(a, weights=(side[b] != 0), minlength=n)
                     + np.bincount(b, weights=(side[a] != 0), minlength=n)) > 0
            decided = todo & heard
            if not decided.any():
                break
            side[decided] = np.where(votes[decided] >= 0, 1.0, -1.0)
            todo &= ~decided
        side[todo] = np.sign(score[todo]) + (score[todo] == 0)
        return side
    transfer._diffuse_side = grow
    try:
        yield
    finally:
        transfer._diffuse_side = saved


def interpolate(displacements, tri, bary):
    faces = flame.load_topology().faces
    corners = faces[tri]
    return np.einsum("nk,tnkc->tnc", bary.astype(np.float32), displacements[:, corners])


def evaluate_head(path: Path, animator, audio, fps: float, reference_cache: dict, ablation: bool = False) -> dict:
    with np.load(path, allow_pickle=False) as d:
        user = d["vertices"].astype(np.float64)
        polys = (d["loops"], d["loop_start"], d["loop_total"])
        scale, rot, trans = float(d["scale"]), d["rotation"], d["translation"]
        source = str(d["source"])
        recipe = str(d["recipe"])
    head, _ = meshio.read_mesh(ROOT / "core" / "assets" / "heads" / f"{source}.ply")
    if source not in reference_cache:
        reference_cache[source] = animator.animate(audio, head, fps=fps).displacements
    ref_d = reference_cache[source]                                    # (T, 5023, 3), FLAME head frame
    # Ground truth: where each test vertex came from on the original FLAME head.
    in_flame = ((user - trans) @ rot) / scale
    oracle, plain, (other_tri, other_bary, touching), d_lips = reference_binding(head, in_flame, polys)
    tri_gt, bary_gt, off_gt = oracle.triangles, oracle.barycentric, oracle.distance_mm / 1000.0
    truth = scale * interpolate(ref_d, tri_gt, bary_gt) @ rot.T       # test head frame
    plain_truth = scale * interpolate(ref_d, plain[0], plain[1]) @ rot.T
    # The method under test, from scratch.
    t0 = time.perf_counter()
    reg = registration.register(user, polys, what=path.stem)
    t1 = time.perf_counter()
    corr = transfer.bind(user, polys, reg)
    t2 = time.perf_counter()
    fitted_d = animator.animate(audio, reg.fitted, fps=fps).displacements
    moved = transfer.transfer(fitted_d, corr)
    n = min(len(moved), len(truth))
    topo = flame.load_topology()
    in_lips = np.zeros(flame.NUM_VERTICES, bool)
    in_lips[topo.regions["lips"]] = True
    in_mouth = np.zeros(flame.NUM_VERTICES, bool)
    in_mouth[topo.regions["mouth_jaw"]] = True
    lips = in_lips[topo.faces[tri_gt]].all(1)
    mouth = in_mouth[topo.faces[tri_gt]].any(1)
    # Bridge vertices: off the original surface, between the two lips (the remesher closed the slit there).
    near, far = d_lips.min(0), d_lips.max(0)
    bridge = lips & (plain[2] > ON_SURFACE_MM / 1000.0) & (far < 2.0 * near)
    either_ok = touching | bridge
    other_truth = scale * interpolate(ref_d, other_tri[either_ok], other_bary[either_ok]) @ rot.T

    def lip_errors(moved):
        """(strict error, error where either lip may be followed) in mm, (frames, vertices)."""
        err = np.linalg.norm(moved[:n] - truth[:n], axis=2) / scale * 1000.0   # mm at FLAME scale
        err_either = err.copy()
        err_either[:, either_ok] = np.minimum(
            err[:, either_ok], np.linalg.norm(moved[:n, either_ok] - other_truth[:n], axis=2) / scale * 1000.0)
        return err, err_either

    err, err_either = lip_errors(moved)
    # The binding rule alone: the true head as the fitted template (in the estimated frame).
    exact_user = scale * head @ rot.T + trans
    exact = registration.Registration(
        similarity=reg.similarity, fitted=exact_user, fitted_canonical=reg.similarity.to_canonical(exact_user),
        rigid_face_mm=0.0, fit_face_mm=0.0, landmarks_from="exact", seconds=0.0)
    err_exact, _ = lip_errors(transfer.transfer(scale * ref_d @ rot.T, transfer.bind(user, polys, exact)))
    motion = np.linalg.norm(truth[:n], axis=2) / scale * 1000.0
    # How much the lip rule changes the ground truth itself (vs the plain closest point).
    oracle_vs_plain = np.linalg.norm(truth[:n] - plain_truth[:n], axis=2) / scale * 1000.0
    sizes = np.bincount(polys[2])
    # Check of the reference itself where the truth is known: Catmull-Clark keeps the control
    # vertices first, so a subdivided head's first 5023 vertices are FLAME's own, in order.
    # Where the worst lip vertex is: across the mouth from the midline, and how deep inside it.
    lmk = topo.landmarks(head)
    worst = int(np.flatnonzero(lips)[np.argmax(err[:, lips].max(0))])
    rel = (in_flame[worst] - lmk[[62, 66]].mean(0)) * 1000.0
    worst_info = {
        "error_mm": round(float(err[:, worst].max()), 2), "x_mm": round(float(rel[0]), 1),
        "mouth_half_width_mm": round(float(abs(lmk[54, 0] - lmk[48, 0]) * 500.0), 1),
        "depth_mm": round(float(-rel[2]), 1),
        "upper_lip_mm": round(float(d_lips[0, worst] * 1000), 2), "lower_lip_mm": round(float(d_lips[1, worst] * 1000), 2),
        "surface_mm": round(float(plain[2][worst] * 1000), 2), "bridge": bool(bridge[worst]),
        "touching": bool(touching[worst]), "reference_side": int(oracle.lip_side[worst]),
        "transfer_side": int(corr.lip_side[worst])}
    # The fitted template's lip vertices against their true places (vertex k belongs at head vertex k).
    fitted_flame = ((reg.fitted - trans) @ rot) / scale
    fit_vertex = np.linalg.norm(fitted_flame - head, axis=1)[in_lips] * 1000.0
    tmpl_vertex = np.linalg.norm(topo.template - head, axis=1)[in_lips] * 1000.0
    clear = lips & ~either_ok
    side_wrong = clear & (corr.lip_side != oracle.lip_side)
    ablations = _ablation(user, polys, reg, fitted_d, animator, audio, fps, lip_errors, lips, corr) if ablation else None
    provenance = None
    if "SUBSURF" in recipe and "DECIMATE" not in recipe:
        label, _ = transfer.lip_labels()
        on_lips = label != transfer.FREE
        provenance = {"lip_vertices": int(on_lips.sum()),
                      "reference_side_correct": int((oracle.lip_side[:flame.NUM_VERTICES][on_lips] == label[on_lips]).sum())}
    return {
        "head": path.stem, "source": source, "vertices": int(len(user)),
        "polygons": {f"{k}-gons": int(c) for k, c in enumerate(sizes) if c and k > 0},
        "frame_scale": scale, "frames": int(n),
        "register_s": round(t1 - t0, 2), "bind_s": round(t2 - t1, 2),
        "fit_face_mm": round(reg.fit_face_mm, 3), "rigid_face_mm": round(reg.rigid_face_mm, 3),
        "test_vertex_offset_mm": round(float(off_gt.mean() * 1000.0), 3),
        "mean_mm": float(err.mean()),
        "mouth_jaw_mean_mm": float(err[:, mouth].mean()) if mouth.any() else None,
        "lips_vertices": int(lips.sum()),
        "lips_mean_mm": float(err[:, lips].mean()) if lips.any() else None,
        "lips_p99_mm": float(np.percentile(err[:, lips], 99)) if lips.any() else None,
        "lips_max_mm": float(err[:, lips].max()) if lips.any() else None,
        "max_mm": float(err.max()), "max_region": _region(topo, head, in_flame[int(err.max(0).argmax())], tri_gt[int(err.max(0).argmax())]),
        "touching_lip_vertices": int(touching.sum()),
        "bridge_vertices": int(bridge.sum()),
        "lips_max_outside_bridge_mm": float(err[:, lips & ~bridge].max()),
        "lips_p99_outside_bridge_mm": float(np.percentile(err[:, lips & ~bridge], 99)),
        "bridge_max_mm": float(err[:, bridge].max()) if bridge.any() else None,
        "bridge_max_either_lip_mm": float(err_either[:, bridge].max()) if bridge.any() else None,
        "lips_max_either_lip_mm": float(err_either[:, lips].max()) if lips.any() else None,
        "lips_max_exact_template_mm": float(err_exact[:, lips].max()) if lips.any() else None,
        "lips_p99_either_lip_mm": float(np.percentile(err_either[:, lips], 99)) if lips.any() else None,
        "lips_side_mismatch": int(side_wrong.sum()), "lips_clear_vertices": int(clear.sum()),
        "lips_worst": worst_info,
        "template_lips_vertex_mm": {"mean": round(float(tmpl_vertex.mean()), 2), "max": round(float(tmpl_vertex.max()), 2)},
        "fitted_lips_vertex_mm": {"mean": round(float(fit_vertex.mean()), 2), "max": round(float(fit_vertex.max()), 2)},
        "reference_rule_vs_closest_point_lips_max_mm": float(oracle_vs_plain[:, lips].max()) if lips.any() else None,
        "reference_rule_vertices_changed": int((np.abs(plain[0] - tri_gt) > 0).sum()),
        "reference_lips_max_motion_mm": float(motion[:, lips].max()) if lips.any() else None,
        "reference_lip_side_check": provenance,
        "lip_sides": {"free": int((corr.lip_side == 0).sum()), "upper": int((corr.lip_side == 1).sum()),
                      "lower": int((corr.lip_side == 2).sum())},
        **({"ablation": ablations} if ablations is not None else {}),
    }


def _region(topo, head, point, triangle: int) -> str:
    """Where a vertex is: the FLAME region holding its reference triangle (lips, mouth_jaw,
    upper_face), "eyes" within 15 mm of an eye landmark, or "elsewhere"."""
    for name in ("lips", "mouth_jaw", "upper_face"):
        if np.isin(topo.faces[triangle], topo.regions[name]).all():
            return name
    if np.linalg.norm(topo.landmarks(head)[36:48] - point, axis=1).min() < 0.015:
        return "eyes"
    return "elsewhere"


def _ablation(user, polys, reg, fitted_d, animator, audio, fps, lip_errors, lips, corr) -> dict:
    """Lip errors of variants of the method on one head (same reference, same frames)."""
    def stats(moved):
        err, either = lip_errors(moved)
        return {"lips_max_mm": round(float(err[:, lips].max()), 2),
                "lips_p99_mm": round(float(np.percentile(err[:, lips], 99)), 2),
                "lips_mean_mm": round(float(err[:, lips].mean()), 3),
                "lips_max_either_lip_mm": round(float(either[:, lips].max()), 2)}
    out = {"as shipped": stats(transfer.transfer(fitted_d, corr))}
    plain = registration.register(user, polys, config=registration.FitConfig(rim_weight=0.0))
    out["no mouth-rim term"] = stats(transfer.transfer(animator.animate(audio, plain.fitted, fps=fps).displacements,
                                                       transfer.bind(user, polys, plain)))
    for sure in (2.0, 4.0):
        out[f"lip-side margin {sure:g} mm"] = stats(transfer.transfer(fitted_d, transfer.bind(user, polys, reg, sure_mm=sure)))
    with corners_shared():
        shared = transfer.bind(user, polys, reg)
    out["corner triangles open to both lips"] = stats(transfer.transfer(fitted_d, shared))
    with grown_front():
        grown = transfer.bind(user, polys, reg)
    out["sides grown vertex by vertex"] = stats(transfer.transfer(fitted_d, grown))
    return out


SIDE = {0: "none", 1: "upper", 2: "lower"}


def write_markdown(report: dict, path: Path) -> None:
    t = report["targets"]
    heads = report["heads"]
    lines = [
        "# Motion transfer to heads of other topologies",
        "",
        f"Written by `{report['command']}` on {report['machine']}. Audio: `{report['audio']}` "
        f"({report['frames']} frames at {report['fps']:g} fps), networks: {report['networks']}.",
        "",
        "Each test head is a FLAME head remeshed by Blender (tools/make_test_heads.py) and moved to a random "
        "frame and scale. The template is registered to it from scratch, the networks animate the fitted "
        "template and the motion is transferred; the reference is the networks' motion of the original "
        "FLAME head at the surface point each test vertex came from. Errors are in mm at FLAME scale, "
        "over all vertices and frames.",
        "",
        "| head | vertices | polygons | register s | bind s | fit mm | mean mm | mouth/jaw mean | lips mean | lips p99 | "
        "lips max | bridge vertices | lips max outside the bridge | bridge max (either lip) | lips max (either lip) | max |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for h in heads:
        counts = {int(k.split("-")[0]): v for k, v in h["polygons"].items()}
        polys = ", ".join(f"{counts[k]} {name}" for k, name in ((3, "tris"), (4, "quads")) if counts.get(k))
        ngons = sum(v for k, v in counts.items() if k > 4)
        polys += f", {ngons} n-gons (up to {max(counts)} sides)" if ngons else ""
        bridge = f"{h['bridge_max_either_lip_mm']:.2f}" if h["bridge_vertices"] else "-"
        lines.append(
            f"| {h['head']} | {h['vertices']} | {polys} | {h['register_s']:.1f} | {h['bind_s']:.1f} | "
            f"{h['fit_face_mm']:.2f} | {h['mean_mm']:.3f} | {h['mouth_jaw_mean_mm']:.3f} | {h['lips_mean_mm']:.3f} | "
            f"{h['lips_p99_mm']:.2f} | {h['lips_max_mm']:.2f} | {h['bridge_vertices']} of {h['lips_vertices']} | "
            f"{h['lips_max_outside_bridge_mm']:.2f} | {bridge} | {h['lips_max_either_lip_mm']:.2f} | "
            f"{h['max_mm']:.2f} ({h['max_region'].replace('_', ' ')}) |")
    s = report["summary"]
    lines += [
        "",
        f"Targets: mean <= {t['mean_mm']} mm (worst head: {s['worst_mean_mm']:.3f} mm, "
        f"{'met' if s['mean_met'] else 'MISSED'}); lip-region max <= {t['lips_max_mm']} mm (worst head: "
        f"{s['worst_lips_max_mm']:.2f} mm, {'met' if s['lips_max_met'] else 'MISSED'}; outside the bridges "
        f"{s['worst_lips_max_outside_bridge_mm']:.2f} mm); registration of the "
        f"60k-vertex head <= {t['register_60k_s']} s "
        + (f"(measured {s['register_60k_s']:.1f} s register + {s['bind_60k_s']:.1f} s bind, "
           f"{'met' if s['register_60k_met'] else 'MISSED'})." if s.get("register_60k_s") is not None
           else "(not measured in this run)."),
        "",
        "`fit mm`: mean distance of the fitted template's face to the test surface. The lips' largest "
        f"reference motion in this clip is {s['reference_lips_max_motion_mm']:.1f} mm. `lips max` is over every "
        "lip vertex with the strict reference below; nothing is left out of it. `max` is over every vertex, with the "
        "FLAME region it is in (at the eyes it is the upper-face layer's blinks, the fastest motion of the head).",
        "",
        "**The reference at the mouth slit.** Where the original lips touch (FLAME's even overlap a little at rest) "
        "the closest point of a test vertex can lie on the other lip, so the reference settles which lip a vertex "
        "near the slit belongs to with the exact surface and the test mesh's connectivity (an oracle registration)."
        + "".join(f" On {h['head']}, whose first 5023 vertices are FLAME's own (Catmull-Clark keeps the control "
                  f"vertices first), the reference puts {h['reference_lip_side_check']['reference_side_correct']} of "
                  f"{h['reference_lip_side_check']['lip_vertices']} lip vertices on their true lip."
                  for h in heads if h.get("reference_lip_side_check"))
        + f" Two kinds of lip vertex have no single true point: those within {TOUCH_MM} mm of both lips, and "
        f"**bridge vertices**, farther than {ON_SURFACE_MM} mm from the original surface and less than twice as far "
        "from one lip as from the other: a remesher put them across the slit, where FLAME has no surface (the voxel "
        "and QuadriFlow heads fuse the lips there). For them the reference's lip is a convention; a bridged mouth "
        "cannot open without stretching the bridge, and a bridge vertex that follows the other lip than the "
        "reference's is off by the lips' whole relative motion. `lips max (either lip)` lets these vertices follow "
        "the nearer of the two lips' motions; `lips max outside the bridge` is the strict maximum over the rest.",
        "",
        "## Where the largest lip error is",
        "",
        "The worst lip vertex of each head: across the mouth from the midline (the mouth corners are at about "
        "+-half-width), how deep inside the mouth behind the inner-lip line, its distances to the original lips and "
        "surface, and the lip it follows against the reference's.",
        "",
        "| head | error mm | x mm (half-width) | depth mm | upper / lower lip mm | surface mm | kind | lip: reference / transfer | clear lip vertices on the other lip |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for h in heads:
        w = h["lips_worst"]
        kind = "bridge" if w["bridge"] else ("touching" if w["touching"] else "on a lip")
        lines.append(
            f"| {h['head']} | {w['error_mm']:.2f} | {w['x_mm']:+.1f} ({w['mouth_half_width_mm']:.1f}) | {w['depth_mm']:.1f} | "
            f"{w['upper_lip_mm']:.2f} / {w['lower_lip_mm']:.2f} | {w['surface_mm']:.2f} | {kind} | "
            f"{SIDE[w['reference_side']]} / {SIDE[w['transfer_side']]} | {h['lips_side_mismatch']} of {h['lips_clear_vertices']} |")
    lines += [
        "",
        "How far the fitted template's lip vertices are from where they belong (mm; the test heads come from a FLAME "
        "head, so template vertex k belongs at that head's vertex k), against the unfitted template's own difference "
        "from that head. The fit brings the surface within a fraction of a millimetre (`fit mm`), but along the "
        "surface the lips stay about this far off: a vertex bound to the fitted surface takes the motion of a point "
        "this far from its true one. The last column binds the test head to the true head itself in place of the "
        "fitted template (the registration's frame, the binding rule as shipped): what the binding rule alone leaves.",
        "",
        "| head | template lips, mean / max | fitted template lips, mean / max | lips max, exact template |",
        "|---|---|---|---|",
    ]
    for h in heads:
        a, b = h["template_lips_vertex_mm"], h["fitted_lips_vertex_mm"]
        lines.append(f"| {h['head']} | {a['mean']:.2f} / {a['max']:.2f} | {b['mean']:.2f} / {b['max']:.2f} | "
                     f"{h['lips_max_exact_template_mm']:.2f} |")
    if any("ablation" in h for h in heads):
        variants = list(next(h for h in heads if "ablation" in h)["ablation"])
        lines += [
            "",
            "## Variants (--ablation): lips max / p99 / mean, mm",
            "",
            "`no mouth-rim term`: the registration without pulling the template's mouth opening onto the head's "
            "(core.registration, `FitConfig.rim_weight`); `lip-side margin`: how much nearer one lip a vertex must be "
            "to take its side without its neighbours (core.transfer `SURE_MM`, 3 mm as shipped); `corner triangles "
            "open to both lips`: the triangles joining the lips at the mouth corners allowed in either lip's binding "
            "(core.transfer.lip_masks bans them); `sides grown vertex by vertex`: the unsure vertices' lip sides "
            "grown from the sure ones round by round (majority of decided neighbours), the rule before "
            "core.transfer's diffused side score.",
            "",
            "| head | " + " | ".join(variants) + " |",
            "|---|" + "---|" * len(variants),
        ]
        for h in heads:
            if "ablation" not in h:
                continue
            cells = [f"{v['lips_max_mm']:.2f} / {v['lips_p99_mm']:.2f} / {v['lips_mean_mm']:.3f}"
                     for v in h["ablation"].values()]
            lines.append(f"| {h['head']} | " + " | ".join(cells) + " |")
    lines += ["", "## Why the lip maximum misses 1.5 mm", "", *conclusion(report), ""]
    path.write_text("\n".join(lines))


def _span(values, fmt="{:.2f}") -> str:
    lo, hi = fmt.format(min(values)), fmt.format(max(values))
    return lo if lo == hi else f"{lo}-{hi}"


def conclusion(report: dict) -> list:
    """The findings, with this run's numbers."""
    heads = report["heads"]
    opened = [h for h in heads if h["bridge_vertices"] <= 0.05 * h["lips_vertices"]]
    bridged = [h for h in heads if h not in opened]
    out = []
    if opened:
        corners = [h for h in opened if abs(abs(h["lips_worst"]["x_mm"]) - h["lips_worst"]["mouth_half_width_mm"]) < 4.0]
        out.append(
            f"* Heads whose slit stays open ({', '.join(h['head'] for h in opened)}): lips mean "
            f"{_span([h['lips_mean_mm'] for h in opened], '{:.3f}')} mm, p99 {_span([h['lips_p99_mm'] for h in opened])} mm, "
            f"max {_span([h['lips_max_mm'] for h in opened])} mm. The worst vertex of {len(corners)} of {len(opened)} sits at a "
            f"mouth corner (|x| within 4 mm of the half-width), {_span([h['lips_worst']['depth_mm'] for h in opened], '{:.0f}')} mm "
            "inside the mouth, where the two lips' inner surfaces meet and part by several millimetres as the mouth "
            "opens. The fitted template's lip vertices are still "
            f"{_span([h['fitted_lips_vertex_mm']['mean'] for h in opened], '{:.1f}')} mm (mean) from their true places "
            f"(the unfitted template: {_span([h['template_lips_vertex_mm']['mean'] for h in opened], '{:.1f}')} mm), so at "
            "the corners a vertex within a millimetre or two of both lips is bound to the other lip, or beside its "
            f"true point on its own ({_span([h['lips_side_mismatch'] for h in opened], '{:.0f}')} lip vertices per head "
            "outside the touching zone follow the other lip than the reference's).")
    if bridged:
        out.append(
            f"* Heads whose slit the remesher closed ({', '.join(h['head'] for h in bridged)}): "
            + "; ".join(f"{h['head']} has {h['bridge_vertices']} bridge vertices, strict max {h['lips_max_mm']:.2f} mm, "
                        f"{h['lips_max_outside_bridge_mm']:.2f} mm outside the bridge, the bridge against the nearer "
                        f"lip {h['bridge_max_either_lip_mm']:.2f} mm" for h in bridged)
            + ". A closed mouth cannot open: its bridge stretches, and which lip each bridge vertex follows is a "
            "convention, so the strict error there is up to the lips' whole relative motion. Beside the bridge the "
            "fused, smoothed lips are fitted worse "
            f"({_span([h['fitted_lips_vertex_mm']['mean'] for h in bridged], '{:.1f}')} mm mean), and vertices a "
            "millimetre or two from both lips follow the other one, as at the open heads' corners.")
    with_ablation = [h for h in (opened or heads) if "ablation" in h]
    if with_ablation:
        names = [k for k in with_ablation[0]["ablation"] if k != "as shipped"]
        shipped = max(h["ablation"]["as shipped"]["lips_max_mm"] for h in with_ablation)
        best = {k: max(h["ablation"][k]["lips_max_mm"] for h in with_ablation) for k in names}
        out.append(
            f"* Not the binding rule: over the {'open ' if opened else ''}heads the worst lips max is {shipped:.2f} mm "
            "as shipped, " + ", ".join(f"{v:.2f} mm with {k}" for k, v in best.items())
            + " (table above; the rim term and the 3 mm margin are kept for the means and 99th percentiles they give).")
    exact = [h["lips_max_exact_template_mm"] for h in (opened or heads)]
    out.append(
        f"* The binding rule alone (the true head in place of the fitted template) leaves {_span(exact)} mm on the "
        f"{'open ' if opened else ''}heads: the rest of the lip maximum is the fit. Reaching 1.5 mm everywhere needs "
        "the template's lip vertices within about half a millimetre of their true places at the mouth corners: a "
        "correspondence the surface alone does not pin down: FLAME identities differ in where along the mouth "
        "opening and the lips' inner surfaces their vertices sit (in a trial, pulling the template's rim vertices "
        "to the head's rim at their own arclength between its corners, or more deformation nodes, did not bring "
        "the corner lips closer). It would take a shape prior such as FLAME's identity space, which the project "
        "does not ship. A slit the remesher closed is a further limit.")
    return out


def main(argv=None) -> int:
    from tools import make_test_heads
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--heads", default="all", help="all | tiny | comma-separated names")
    ap.add_argument("--audio", default=str(ROOT / "core" / "assets" / "audio" / "sample_speech.wav"))
    ap.add_argument("--seconds", type=float, default=0.0, help="use only the first seconds of the audio (0: all)")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--allow-random", action="store_true", help="tests only: random networks when none are installed")
    ap.add_argument("--test-heads", default=str(ROOT / "build" / "test_heads"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "eval" / "transfer"))
    ap.add_argument("--ablation", action="store_true",
                    help="also measure variants: no mouth-rim term, lip-side margins 2 and 4 mm, corner triangles shared")
    args = ap.parse_args(argv)
    names = (list(make_test_heads.RECIPES) if args.heads == "all" else
             sorted(make_test_heads.TINY) if args.heads == "tiny" else args.heads.split(","))
    paths = make_test_heads.ensure(names, args.test_heads)
    from core import audio as audio_io
    samples = audio_io.load_audio(args.audio)
    if args.seconds > 0:
        samples = samples[: int(args.seconds * 16000)]
    clip = (samples, 16000)
    animator = Animator.load(args.weights, allow_random=args.allow_random)
    cache: dict = {}
    heads = []
    for path in paths:
        res = evaluate_head(path, animator, clip, args.fps, cache, ablation=args.ablation)
        heads.append(res)
        print(f"{res['head']}: {res['vertices']} vertices, register {res['register_s']:.1f} s, bind {res['bind_s']:.1f} s, "
              f"mean {res['mean_mm']:.3f} mm, lips mean {res['lips_mean_mm']:.3f} / p99 {res['lips_p99_mm']:.2f} / "
              f"max {res['lips_max_mm']:.2f} mm (outside the bridge {res['lips_max_outside_bridge_mm']:.2f}, "
              f"{res['bridge_vertices']} bridge vertices)", flush=True)
    dense = next((h for h in heads if h["head"] == "dense_60k"), None)
    summary = {
        "worst_mean_mm": max(h["mean_mm"] for h in heads),
        "worst_lips_max_mm": max(h["lips_max_mm"] for h in heads),
        "worst_lips_p99_mm": max(h["lips_p99_mm"] for h in heads),
        "worst_lips_max_outside_bridge_mm": max(h["lips_max_outside_bridge_mm"] for h in heads),
        "reference_lips_max_motion_mm": max(h["reference_lips_max_motion_mm"] for h in heads),
    }
    summary["mean_met"] = summary["worst_mean_mm"] <= TARGETS["mean_mm"]
    summary["lips_max_met"] = summary["worst_lips_max_mm"] <= TARGETS["lips_max_mm"]
    if dense is not None:
        summary.update(register_60k_s=dense["register_s"], bind_60k_s=dense["bind_s"],
                       register_60k_met=dense["register_s"] <= TARGETS["register_60k_s"])
    report = {
        "command": "python tools/evaluate_transfer.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "audio": os.path.relpath(args.audio, ROOT), "fps": args.fps, "frames": heads[0]["frames"],
        "networks": animator.describe(), "targets": TARGETS, "summary": summary, "heads": heads,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    write_markdown(report, out.with_suffix(".md"))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
