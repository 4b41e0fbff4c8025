"""Choose the simulator's renderer by measurement: the time of one 640x480 IR pair (the test
scene of issue 23: a dot projector, a glass sphere, an aluminium cylinder, diffuse boxes and a
wall) in Mitsuba 3 (scalar_rgb) and in Blender as a Python module (bpy, Cycles on the CPU), at
the same samples per pixel and path length, on ONE render thread; CPU seconds (process time)
and wall seconds. Each renderer is measured only where it imports.

    python benchmarks/bench_sim_renderers.py [--spp 8] [--width 640] [--height 480]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _scene_spec():
    from lingbot_depth_ros.sim.scene import Pose, SceneSpec, _rectangle

    cube = np.eye(4)
    cube[:3, :3] *= 0.08
    cube[:3, 3] = (0.25, 0.1, 0.08)
    wall = {"kind": "diffuse", "albedo": [0.6, 0.6, 0.6]}
    objects = [
        _rectangle("table", (0, 0, 0), (1, 0, 0), (0, 1, 0), {"kind": "diffuse", "albedo": [0.5] * 3}),
        _rectangle("wall", (0, 0.8, 1), (2, 0, 0), (0, 0, 1), wall),
        {"name": "glass", "shape": "sphere", "params": {"center": [-0.2, 0.0, 0.1], "radius": 0.1},
         "material": {"kind": "glass", "ior": 1.5}},
        {"name": "metal", "shape": "cylinder", "params": {"p0": [0.0, 0.2, 0], "p1": [0, 0.2, 0.25],
                                                          "radius": 0.06},
         "material": {"kind": "metal", "metal": "Al", "roughness": 0.05}},
        {"name": "box", "shape": "cube", "params": {"to_world": cube},
         "material": {"kind": "diffuse", "albedo": [0.7, 0.5, 0.3]}},
    ]
    camera = Pose.look_at((0.0, -1.0, 0.6), (0.0, 0.1, 0.05))
    return SceneSpec(1, "tabletop", objects, [{"position": np.array([0.5, -0.5, 1.5]),
                                               "intensity": [5.0, 5.0, 5.0]}], 0.1, camera, 1.0)


def bench_mitsuba(width: int, height: int, spp: int) -> dict:
    from lingbot_depth_ros.sim import render
    from lingbot_depth_ros.sim.cameras import camera_model

    render.set_render_threads(1)
    cam = camera_model("d435")
    spec = _scene_spec()
    K = cam.ir_K(width, height)
    projector = {"pose": spec.camera.shifted(cam.baseline_m / 2),
                 "pattern": render.dot_pattern(435, width // 2, height // 2, 0.05),
                 "fov_deg": cam.ir_hfov_deg + 6, "power": 1.0}
    poses = [spec.camera, spec.camera.shifted(cam.baseline_m)]
    render.render_images(spec, poses, K, 64, 48, 1, 6, 0.3, projector)  # warm-up
    cpu, wall = time.process_time(), time.perf_counter()
    render.render_images(spec, poses, K, width, height, spp, 6, 0.3, projector)
    return {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}


def bench_blender(width: int, height: int, spp: int) -> dict:
    import bpy

    scene, cameras = _blender_scene(bpy, width, height, spp)
    out = Path("/tmp") / "bench_sim_blender.png"
    scene.render.filepath = str(out)
    cpu, wall = time.process_time(), time.perf_counter()
    for camera in cameras:
        scene.camera = camera
        bpy.ops.render.render(write_still=True)
    return {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}


def _blender_scene(bpy, width: int, height: int, spp: int):
    """The test scene in Cycles (CPU, one thread); returns (scene, [left, right] cameras)."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = spp
    scene.cycles.use_denoising = False
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.max_bounces = 6
    scene.render.threads_mode = "FIXED"
    scene.render.threads = 1
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.image_settings.file_format = "PNG"

    def material(name, setup):
        mat = bpy.data.materials.new(name)
        mat.use_nodes = True
        setup(mat.node_tree.nodes["Principled BSDF"])
        return mat

    glass = material("glass", lambda n: (n.inputs["Transmission Weight"].__setattr__("default_value", 1.0),
                                         n.inputs["Roughness"].__setattr__("default_value", 0.0)))
    metal = material("metal", lambda n: (n.inputs["Metallic"].__setattr__("default_value", 1.0),
                                         n.inputs["Roughness"].__setattr__("default_value", 0.05)))
    diffuse = material("diffuse", lambda n: n.inputs["Roughness"].__setattr__("default_value", 1.0))
    bpy.ops.mesh.primitive_plane_add(size=2, location=(0, 0, 0))
    bpy.context.object.data.materials.append(diffuse)
    bpy.ops.mesh.primitive_plane_add(size=4, location=(0, 0.8, 1), rotation=(math.pi / 2, 0, 0))
    bpy.context.object.data.materials.append(diffuse)
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.1, location=(-0.2, 0, 0.1), segments=64, ring_count=32)
    bpy.ops.object.shade_smooth()
    bpy.context.object.data.materials.append(glass)
    bpy.ops.mesh.primitive_cylinder_add(radius=0.06, depth=0.25, location=(0, 0.2, 0.125), vertices=64)
    bpy.context.object.data.materials.append(metal)
    bpy.ops.mesh.primitive_cube_add(size=0.16, location=(0.25, 0.1, 0.08))
    bpy.context.object.data.materials.append(diffuse)
    bpy.ops.object.light_add(type="POINT", location=(0.5, -0.5, 1.5))
    bpy.context.object.data.energy = 50
    # the projector: a spot light whose strength is a dot texture (BlenderProc's recipe)
    bpy.ops.object.light_add(type="SPOT", location=(0.025, -1.0, 0.6))
    spot = bpy.context.object
    spot.data.spot_size = math.radians(93)
    spot.data.use_nodes = True
    nodes, links = spot.data.node_tree.nodes, spot.data.node_tree.links
    coords, voronoi = nodes.new("ShaderNodeTexCoord"), nodes.new("ShaderNodeTexVoronoi")
    voronoi.feature = "DISTANCE_TO_EDGE"
    voronoi.inputs["Scale"].default_value = 200.0
    links.new(coords.outputs["Normal"], voronoi.inputs["Vector"])
    ramp = nodes.new("ShaderNodeValToRGB")
    links.new(voronoi.outputs["Distance"], ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], nodes["Emission"].inputs["Strength"])
    spot.rotation_euler = (math.radians(65), 0, 0)
    cameras = []
    for x in (0.0, 0.05):
        bpy.ops.object.camera_add(location=(x, -1.0, 0.6), rotation=(math.radians(65), 0, 0))
        cameras.append(bpy.context.object)
        bpy.context.object.data.angle = math.radians(87)
    return scene, cameras


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spp", type=int, default=8)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--only", choices=("mitsuba", "blender"))
    args = parser.parse_args()
    for name, bench in (("mitsuba", bench_mitsuba), ("blender", bench_blender)):
        if args.only not in (None, name):
            continue
        try:
            result = bench(args.width, args.height, args.spp)
        except ImportError as exc:
            print(f"{name:8s} skipped: does not import ({exc})")
            continue
        print(f"{name:8s} IR pair {args.width}x{args.height} at {args.spp} spp, 1 thread: "
              f"{result['cpu_s']:.2f} s CPU, {result['wall_s']:.2f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
