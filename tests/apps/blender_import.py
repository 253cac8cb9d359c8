"""Run inside a Python that has Blender's ``bpy`` (tests/apps/test_blender_import.py): import a GLB with Blender's
own glTF importer, evaluate the posed mesh (armature and shape keys as imported) and print JSON: bone names,
shape-key names and values, and the largest distance from each reference vertex to Blender's mesh.

    python blender_import.py FILE.glb REFERENCE.npy   # REFERENCE: (N, 3) posed positions, glTF's Y-up frame
"""

import json
import sys

import bpy
import numpy as np

path, reference = sys.argv[1], np.load(sys.argv[2])
bpy.ops.wm.read_factory_settings(use_empty=True)
bpy.ops.import_scene.gltf(filepath=path)
mesh = next(o for o in bpy.context.scene.objects if o.type == "MESH" and o.data.shape_keys)
armature = next(o for o in bpy.context.scene.objects if o.type == "ARMATURE")
keys = mesh.data.shape_keys.key_blocks[1:]  # [0] is the basis
evaluated = mesh.evaluated_get(bpy.context.evaluated_depsgraph_get())
data = evaluated.to_mesh()
world = np.array([tuple(evaluated.matrix_world @ v.co) for v in data.vertices])
posed = np.stack([world[:, 0], world[:, 2], -world[:, 1]], 1)  # Blender's Z-up -> glTF's Y-up
nearest = np.full(len(reference), np.inf)
for start in range(0, len(posed), 2000):
    d = ((reference[:, None, :] - posed[None, start : start + 2000, :]) ** 2).sum(-1)
    nearest = np.minimum(nearest, d.min(1))
print(json.dumps({"bones": [b.name for b in armature.data.bones], "keys": [k.name for k in keys],
                  "values": [k.value for k in keys], "vertices": len(posed),
                  "max_distance": float(np.sqrt(nearest.max()))}))
