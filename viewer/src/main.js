// decalite-view: reconstructions as animatable GLBs (decalite.apps.gltf) in the browser, offline.
//
// The page lists the GLBs the server finds (api/list), loads one with three.js's GLTFLoader and drives it as the
// file says: expression components are morph targets, the head and jaw are joints of the skin, and FLAME's pose
// correctives are the morph targets "pose_<joint>_<row><col>", set to (R - I)[row][col] of that joint's rotation
// whenever a joint turns (what makes the GLB equal FLAME at any pose).
//
// URL parameters (what the tests use; all optional):
//   glb=URL        load this file (default: the first of the list)
//   cam=s,tx,ty    decalite's orthographic camera (an orthographic view identical to decalite's renders)
//   yaw, pitch, roll, jaw   radians;  exp.NAME=value   a morph weight by its target name
//   normals=0|1    the detail normal map;  turntable=0|1;  ui=0 hides the panels;  size=N  a square N x N canvas
//   set=ID:VALUE[;ID:VALUE]  move sliders (input events on the slider with that id), after loading

import * as THREE from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

const params = new URLSearchParams(window.location.search);
const JOINTS = ["neck", "jaw", "left_eye", "right_eye"];
const state = { root: null, mesh: null, bones: {}, names: [], normalMap: null, turntable: false, spin: 0 };

const size = params.has("size") ? parseInt(params.get("size"), 10) : null;
const canvas = document.getElementById("view");
const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(size ? 1 : window.devicePixelRatio);
renderer.outputColorSpace = THREE.SRGBColorSpace;
const scene = new THREE.Scene();
scene.background = new THREE.Color(params.get("bg") ? `#${params.get("bg")}` : "#ffffff");
scene.add(new THREE.HemisphereLight(0xffffff, 0x404050, 1.6));
const key = new THREE.DirectionalLight(0xffffff, 1.8);
key.position.set(0.3, 0.5, 1.0);
scene.add(key);

let camera;
const cam = params.get("cam");
if (cam) {
  // decalite's camera: NDC = s * (X + t) for x and y, looking down -z.
  const [s, tx, ty] = cam.split(",").map(Number);
  camera = new THREE.OrthographicCamera(-1 / s - tx, 1 / s - tx, 1 / s - ty, -1 / s - ty, -10, 10);
  camera.position.set(0, 0, 1);
} else {
  camera = new THREE.PerspectiveCamera(25, 1, 0.01, 10);
  camera.position.set(0, 0.02, 0.75);
}
const controls = cam ? null : new OrbitControls(camera, canvas);
if (controls) controls.target.set(0, 0.0, 0);

function resize() {
  const width = size || canvas.parentElement.clientWidth;
  const height = size || canvas.parentElement.clientHeight;
  renderer.setSize(width, height, false);
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  if (camera.isPerspectiveCamera) {
    camera.aspect = width / height;
    camera.updateProjectionMatrix();
  }
}
window.addEventListener("resize", resize);

// ---- posing --------------------------------------------------------------------------------------------------

function setWeight(name, value) {
  const k = state.mesh.morphTargetDictionary[name];
  if (k !== undefined) state.mesh.morphTargetInfluences[k] = value;
}

function updateCorrectives() {
  const m = new THREE.Matrix4();
  for (const joint of JOINTS) {
    const bone = state.bones[joint];
    if (!bone) continue;
    m.makeRotationFromQuaternion(bone.quaternion);
    const e = m.elements; // column-major: R[r][c] = e[c * 4 + r]
    for (let r = 0; r < 3; r++) {
      for (let c = 0; c < 3; c++) setWeight(`pose_${joint}_${r}${c}`, e[c * 4 + r] - (r === c ? 1 : 0));
    }
  }
}

function setJointEuler(joint, x, y, z) {
  const bone = state.bones[joint];
  if (!bone) return;
  // Euler angles x (pitch), y (yaw), z (roll) in XYZ order; about one axis they equal DECA's axis-angle pose
  bone.quaternion.setFromEuler(new THREE.Euler(x, y, z, "XYZ"));
  updateCorrectives();
}

const pose = { yaw: 0, pitch: 0, roll: 0, jaw: 0 };

function applyPose() {
  setJointEuler("global", pose.pitch, pose.yaw, pose.roll);
  setJointEuler("jaw", pose.jaw, 0, 0);
}

// ---- the panels ----------------------------------------------------------------------------------------------

function slider(parent, id, label, min, max, value, onInput) {
  const row = document.createElement("label");
  row.className = "slider";
  row.textContent = label;
  const input = document.createElement("input");
  Object.assign(input, { type: "range", id, min, max, step: (max - min) / 200, value });
  input.addEventListener("input", () => onInput(parseFloat(input.value)));
  row.appendChild(input);
  parent.appendChild(row);
  return input;
}

function buildControls() {
  const panel = document.getElementById("controls");
  panel.replaceChildren();
  const head = document.createElement("h3");
  head.textContent = "pose";
  panel.appendChild(head);
  for (const [k, lo, hi] of [["yaw", -1, 1], ["pitch", -0.6, 0.6], ["roll", -0.5, 0.5], ["jaw", 0, 0.5]]) {
    slider(panel, `pose-${k}`, k, lo, hi, pose[k], (v) => { pose[k] = v; applyPose(); });
  }
  const toggles = document.createElement("div");
  toggles.className = "toggles";
  for (const [id, label, checked, onChange] of [
    ["normals", "detail normals", state.mesh.material.normalMap !== null, (on) => {
      state.mesh.material.normalMap = on ? state.normalMap : null;
      state.mesh.material.needsUpdate = true;
    }],
    ["turntable", "turntable", state.turntable, (on) => { state.turntable = on; }],
  ]) {
    const box = Object.assign(document.createElement("input"), { type: "checkbox", id, checked });
    box.addEventListener("change", () => onChange(box.checked));
    const row = document.createElement("label");
    row.append(box, label);
    toggles.appendChild(row);
  }
  panel.appendChild(toggles);
  const exp = document.createElement("h3");
  exp.textContent = "expression";
  panel.appendChild(exp);
  state.names.filter((n) => !n.startsWith("pose_")).forEach((name, k) => {
    const value = state.mesh.morphTargetInfluences[state.mesh.morphTargetDictionary[name]];
    slider(panel, `exp-${k}`, name, -3, 3, value, (v) => setWeight(name, v));
  });
}

async function listReconstructions() {
  try {
    const response = await fetch("api/list");
    return response.ok ? await response.json() : [];
  } catch {
    return [];
  }
}

function buildList(items) {
  const list = document.getElementById("list");
  list.replaceChildren();
  for (const item of items) {
    const entry = document.createElement("button");
    entry.className = "entry";
    if (item.photo) entry.appendChild(Object.assign(document.createElement("img"), { src: item.photo, alt: "" }));
    entry.appendChild(Object.assign(document.createElement("span"), { textContent: item.name }));
    entry.addEventListener("click", () => load(item.glb));
    list.appendChild(entry);
  }
}

// ---- loading -------------------------------------------------------------------------------------------------

async function load(url) {
  const gltf = await new GLTFLoader().loadAsync(url);
  if (state.root) scene.remove(state.root);
  state.root = gltf.scene;
  state.mesh = null;
  state.bones = {};
  gltf.scene.traverse((node) => {
    if (node.isSkinnedMesh && !state.mesh) state.mesh = node;
    if (node.isBone) state.bones[node.name] = node;
  });
  state.mesh.frustumCulled = false;
  state.names = Object.keys(state.mesh.morphTargetDictionary)
    .sort((a, b) => state.mesh.morphTargetDictionary[a] - state.mesh.morphTargetDictionary[b]);
  state.normalMap = state.mesh.material.normalMap;
  scene.add(gltf.scene);
  // the file's initial state: its own joint rotations and weights; the sliders start from zero pose offsets
  if (controls) {
    // frame the head: the whole mesh in view, seen from the front (+z)
    const box = new THREE.Box3().setFromObject(gltf.scene);
    const centre = box.getCenter(new THREE.Vector3());
    const extent = box.getSize(new THREE.Vector3());
    const distance = (1.15 * Math.max(extent.x, extent.y)) / (2 * Math.tan(THREE.MathUtils.degToRad(camera.fov / 2)));
    camera.position.set(centre.x, centre.y, centre.z + extent.z / 2 + distance);
    controls.target.copy(centre);
  }
  // the sliders start at the file's pose (the reconstructed head rotation and jaw)
  const euler = (bone) => new THREE.Euler().setFromQuaternion(bone ? bone.quaternion : new THREE.Quaternion(), "XYZ");
  const start = euler(state.bones.global);
  Object.assign(pose, { pitch: start.x, yaw: start.y, roll: start.z, jaw: euler(state.bones.jaw).x });
  for (const k of ["yaw", "pitch", "roll", "jaw"]) if (params.has(k)) pose[k] = parseFloat(params.get(k));
  if (["yaw", "pitch", "roll", "jaw"].some((k) => params.has(k))) applyPose();
  for (const [k, v] of params) if (k.startsWith("exp.")) setWeight(k.slice(4), parseFloat(v));
  if (params.get("normals") === "0") {
    state.mesh.material.normalMap = null;
    state.mesh.material.needsUpdate = true;
  }
  buildControls();
  for (const move of (params.get("set") || "").split(";").filter(Boolean)) {
    const [id, value] = move.split(":");
    const input = document.getElementById(id);
    if (!input) continue;
    if (input.type === "checkbox") input.checked = value === "1";
    else input.value = value;
    input.dispatchEvent(new Event(input.type === "checkbox" ? "change" : "input"));
  }
  document.title = `decalite-view: ${url.split("/").pop()}`;
  document.body.dataset.loaded = url;
}

function frame() {
  if (state.turntable && state.root) {
    state.spin += 0.01;
    state.root.rotation.y = state.spin;
  }
  if (controls) controls.update();
  renderer.render(scene, camera);
  requestAnimationFrame(frame);
}

async function main() {
  if (params.get("ui") === "0") document.body.classList.add("bare");
  state.turntable = params.get("turntable") === "1";
  resize();
  const items = await listReconstructions();
  buildList(items);
  const url = params.get("glb") || (items[0] && items[0].glb);
  if (url) await load(url);
  else document.getElementById("list").textContent = "no .glb found (decalite-reconstruct save.gltf=true)";
  frame();
}

main().catch((err) => {
  document.body.dataset.error = String(err);
  console.error(err);
});
