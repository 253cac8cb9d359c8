"""The restricted unpickler: what it admits (FLAME/DECA pickles, chumpy, old scipy paths) and what it refuses."""

from __future__ import annotations

import builtins
import collections
import io
import os
import pickle
import struct
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from decalite.errors import AssetError, UnsafePickleError
from decalite.flame.asset_writer import write_flame_model
from decalite.flame.assets import load_flame_model, load_landmark_embedding
from decalite.flame.model_data import FlameModelData
from decalite.io import ChumpyStandIn, chumpy_to_numpy, safe_load_npy_pickle, safe_load_pickle

# --------------------------------------------------------------------------------------------------------
# Allowed content


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_admits_array_data_in_every_protocol(protocol: int) -> None:
    data = {
        "a": np.arange(6.0).reshape(2, 3),
        "i": np.array([1, 2], dtype=np.uint32),
        "scalar": np.float64(2.5),
        "csc": sp.csc_matrix(np.eye(3)),
        "csr": sp.csr_matrix(np.eye(2)),
        "coo": sp.coo_matrix(np.eye(2)),
        "t": torch.arange(12).reshape(3, 4)[:, 1:],
        "od": collections.OrderedDict(x=1),
        "misc": [{1, 2}, frozenset({3}), b"xyz", b"", 1 + 2j, "text", (1, None, True)],
    }
    loaded = safe_load_pickle(io.BytesIO(pickle.dumps(data, protocol=protocol)))
    np.testing.assert_array_equal(loaded["a"], data["a"])
    assert loaded["i"].dtype == np.uint32 and loaded["scalar"] == 2.5
    for key in ("csc", "csr", "coo"):
        assert type(loaded[key]) is type(data[key])
        np.testing.assert_array_equal(loaded[key].toarray(), data[key].toarray())
    assert torch.equal(loaded["t"], data["t"])
    assert loaded["od"] == data["od"] and loaded["misc"] == data["misc"]


def test_old_scipy_module_path_is_mapped() -> None:
    payload = pickle.dumps({"J_regressor": sp.csc_matrix(np.eye(3) * 2)}, protocol=2)
    old = payload.replace(b"scipy.sparse._csc\ncsc_matrix", b"scipy.sparse.csc\ncsc_matrix")
    assert old != payload
    loaded = safe_load_pickle(io.BytesIO(old))
    assert isinstance(loaded["J_regressor"], sp.csc_matrix)
    np.testing.assert_array_equal(loaded["J_regressor"].toarray(), np.eye(3) * 2)


# --------------------------------------------------------------------------------------------------------
# chumpy


@pytest.fixture
def fake_chumpy() -> Iterator[dict[str, type]]:
    """Throwaway 'chumpy' modules, registered only while pickling; removed again before loading."""
    names = ("chumpy", "chumpy.ch", "chumpy.reordering")
    saved = {name: sys.modules.get(name) for name in names}
    modules = {name: types.ModuleType(name) for name in names}

    class Ch:
        def __init__(self, x: Any) -> None:
            self.x = np.asarray(x)
            self._dirty_vars = {"x"}
            self._make_dense = False
            self._depends_on_deps = {}

    class Select(Ch):
        def __init__(self, a: Any, idxs: Any) -> None:
            self.a = a
            self.idxs = np.asarray(idxs)

    for cls, module in ((Ch, "chumpy.ch"), (Select, "chumpy.reordering")):
        cls.__module__, cls.__qualname__ = module, cls.__name__
        setattr(modules[module], cls.__name__, cls)
    modules["chumpy"].Ch = Ch
    sys.modules.update(modules)
    try:
        yield {"Ch": Ch, "Select": Select}
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:  # pragma: no cover - chumpy is never installed here
                sys.modules[name] = module


def _remove_fake_chumpy() -> None:
    for name in ("chumpy", "chumpy.ch", "chumpy.reordering"):
        sys.modules.pop(name, None)


def _chumpy_model_content(model: FlameModelData, classes: dict[str, type]) -> dict[str, Any]:
    """The dict of a generic_model.pkl the way FLAME ships it: chumpy arrays, uint32 root marker."""
    ch = classes["Ch"]
    kintree = np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64)
    content = {
        "v_template": ch(model.v_template),
        "f": model.faces.astype(np.uint32),
        "shapedirs": ch(model.shapedirs),
        "posedirs": ch(model.posedirs),
        "J_regressor": sp.csc_matrix(model.j_regressor),
        "kintree_table": kintree,
        "weights": ch(model.lbs_weights),
        "J": classes["Select"](ch(model.v_template), [0, 1]),  # a derived node on an unused key
        "weights_prior": ch(model.lbs_weights),
        "bs_style": "lbs",
        "bs_type": "lrotmin",
    }
    return content


def _chumpy_model_pickle(model: FlameModelData, classes: dict[str, type], protocol: int) -> bytes:
    """:func:`_chumpy_model_content` pickled, with J_regressor under the old path scipy.sparse.csc."""
    data = pickle.dumps(_chumpy_model_content(model, classes), protocol=protocol)
    old_path = data.replace(b"scipy.sparse._csc\ncsc_matrix", b"scipy.sparse.csc\ncsc_matrix")
    assert old_path != data
    return old_path


@pytest.mark.parametrize("protocol", [0, 2])  # 0: copy_reg._reconstructor + __builtin__.object; 2: NEWOBJ
def test_chumpy_generic_model_loads_without_chumpy(
    tmp_path: Path, tiny_model: FlameModelData, fake_chumpy: dict[str, type], protocol: int
) -> None:
    payload = _chumpy_model_pickle(tiny_model, fake_chumpy, protocol)
    if protocol == 0:
        assert b"copy_reg\n_reconstructor" in payload and b"__builtin__\nobject" in payload
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(payload)
    _remove_fake_chumpy()

    loaded = load_flame_model(path)
    assert "chumpy" not in sys.modules and "chumpy.ch" not in sys.modules
    for name in ("v_template", "faces", "shapedirs", "posedirs", "j_regressor", "lbs_weights"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(tiny_model, name), err_msg=name)
    assert loaded.parents.tolist() == [-1, 0, 1, 1, 1]

    raw = safe_load_pickle(path)
    assert isinstance(raw["v_template"], ChumpyStandIn) and raw["v_template"].class_path == "chumpy.ch.Ch"
    assert isinstance(raw["J_regressor"], sp.csc_matrix)
    np.testing.assert_array_equal(chumpy_to_numpy(raw["weights_prior"]), tiny_model.lbs_weights)
    assert "chumpy" not in sys.modules


class _Py2StylePickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes str and bytes as Python 2 ``str`` opcodes (BINSTRING), the way FLAME's pickle was written."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def _save_py2_str(self, obj: str | bytes) -> None:
        data = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


@pytest.mark.parametrize("protocol", [1, 2])
def test_python2_style_generic_model(
    tmp_path: Path, tiny_model: FlameModelData, fake_chumpy: dict[str, type], protocol: int
) -> None:
    """Python 2 names (copy_reg, __builtin__, numpy.core, scipy.sparse.csc) and latin1 array buffers."""
    content = _chumpy_model_content(tiny_model, fake_chumpy)
    buf = io.BytesIO()
    _Py2StylePickler(buf, protocol=protocol).dump(content)
    payload = buf.getvalue().replace(b"numpy._core.", b"numpy.core.")
    payload = payload.replace(b"scipy.sparse._csc\ncsc_matrix", b"scipy.sparse.csc\ncsc_matrix")
    assert b"numpy.core.multiarray\n_reconstruct" in payload and b"_codecs" not in payload
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(payload)
    _remove_fake_chumpy()

    loaded = load_flame_model(path)
    assert "chumpy" not in sys.modules
    for name in ("v_template", "faces", "shapedirs", "posedirs", "j_regressor", "lbs_weights"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(tiny_model, name), err_msg=name)
    assert loaded.parents.tolist() == [-1, 0, 1, 1, 1]


def test_derived_chumpy_node_on_required_key(
    tmp_path: Path, tiny_model: FlameModelData, fake_chumpy: dict[str, type]
) -> None:
    content = {"shapedirs": fake_chumpy["Select"](fake_chumpy["Ch"](tiny_model.shapedirs), [0])}
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps(content, protocol=2))
    _remove_fake_chumpy()
    raw = safe_load_pickle(path)
    with pytest.raises(AssetError, match=r"'shapedirs' is a derived chumpy expression \(chumpy.reordering.Select\)"):
        chumpy_to_numpy(raw["shapedirs"], name="shapedirs", source=str(path))
    nested = chumpy_to_numpy({"a": [fake_stand_in_with_x()]})
    np.testing.assert_array_equal(nested["a"][0], [1.0, 2.0])


def fake_stand_in_with_x() -> ChumpyStandIn:
    obj = ChumpyStandIn()
    obj.__setstate__({"x": np.array([1.0, 2.0])})
    return obj


# --------------------------------------------------------------------------------------------------------
# Refused content


class _Exploit:
    def __init__(self, func: Any, args: tuple[Any, ...]) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.func, self.args)


def _exploits(marker: Path) -> dict[str, _Exploit]:
    return {
        "system": _Exploit(os.system, (f"touch {marker}",)),
        "eval": _Exploit(builtins.eval, (f"open({str(marker)!r}, 'w').close()",)),
        "exec": _Exploit(builtins.exec, (f"open({str(marker)!r}, 'w').close()",)),
        "subprocess.call": _Exploit(subprocess.call, (["touch", str(marker)],)),
        "getattr": _Exploit(builtins.getattr, ((1, 2), "__class__")),
        "open": _Exploit(builtins.open, (str(marker), "w")),
    }


_EXPECTED_GLOBAL = {
    "system": f"{os.system.__module__}.system",  # posix.system on Linux
    "eval": "builtins.eval",
    "exec": "builtins.exec",
    "subprocess.call": "subprocess.call",
    "getattr": "builtins.getattr",
    "open": f"{builtins.open.__module__}.open",
}


@pytest.mark.parametrize("name", sorted(_EXPECTED_GLOBAL))
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_malicious_generic_model_is_refused(
    tmp_path: Path, tiny_model: FlameModelData, name: str, protocol: int
) -> None:
    marker = tmp_path / "pwned"
    good = tmp_path / "good.pkl"
    write_flame_model(good, tiny_model)
    content = pickle.loads(good.read_bytes())
    content["J"] = _exploits(marker)[name]  # an innocuous-looking extra key
    path = tmp_path / "generic_model.pkl"
    path.write_bytes(pickle.dumps(content, protocol=protocol))

    with pytest.raises(UnsafePickleError) as info:
        load_flame_model(path)
    err = info.value
    assert isinstance(err, AssetError)
    assert err.global_name == _EXPECTED_GLOBAL[name]
    assert f"'{_EXPECTED_GLOBAL[name]}'" in str(err) and str(path) in str(err)
    assert "flame.is.tue.mpg.de" in str(err)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["system", "eval", "subprocess.call", "getattr"])
def test_malicious_landmark_npy_is_refused(tmp_path: Path, name: str) -> None:
    from numpy.lib import format as npy_format

    marker = tmp_path / "pwned"
    holder = np.empty((), dtype=object)
    holder[()] = {"static_lmk_faces_idx": _exploits(marker)[name]}
    path = tmp_path / "landmark_embedding.npy"
    with open(path, "wb") as fh:
        npy_format.write_array_header_1_0(fh, npy_format.header_data_from_array_1_0(holder))
        pickle.dump(holder, fh, protocol=3)

    with pytest.raises(UnsafePickleError) as info:
        load_landmark_embedding(path)
    assert info.value.global_name == _EXPECTED_GLOBAL[name]
    assert str(path) in str(info.value)
    with pytest.raises(UnsafePickleError):
        safe_load_npy_pickle(path)
    assert not marker.exists()


def test_reconstructor_only_builds_stand_ins() -> None:
    # copy_reg._reconstructor(numpy.dtype, object, None): an allowed class, but not one to build this way.
    crafted = b"ccopy_reg\n_reconstructor\n(cnumpy\ndtype\nc__builtin__\nobject\nNtR."
    with pytest.raises(UnsafePickleError, match="copyreg._reconstructor of <class 'numpy.dtype'>") as info:
        safe_load_pickle(io.BytesIO(crafted), source="crafted.pkl")
    assert info.value.global_name == "copyreg._reconstructor" and "'crafted.pkl'" in str(info.value)
    # bytes(n) would allocate n bytes.
    crafted = b"\x80\x02c__builtin__\nbytes\nJ\x00\x00\x00\x7f\x85R."
    with pytest.raises(UnsafePickleError, match=r"bytes\(<size>\)"):
        safe_load_pickle(io.BytesIO(crafted))
    # A tensor rebuilt from something that is not a torch storage.
    fake = _Exploit(torch._utils._rebuild_tensor_v2, (1, 0, (1,), (1,), False, collections.OrderedDict()))
    with pytest.raises(UnsafePickleError, match="tensor rebuild from a int"):
        safe_load_pickle(io.BytesIO(pickle.dumps(fake, protocol=2)))


def test_non_object_npy_loads_normally(tmp_path: Path) -> None:
    path = tmp_path / "plain.npy"
    np.save(path, np.arange(5))
    np.testing.assert_array_equal(safe_load_npy_pickle(path), np.arange(5))


def test_truncated_pickle_is_an_asset_error(tmp_path: Path) -> None:
    payload = pickle.dumps({"a": np.arange(100.0)}, protocol=2)
    with pytest.raises(AssetError, match="unreadable or truncated pickle") as info:
        safe_load_pickle(io.BytesIO(payload[: len(payload) // 2]), source="half.pkl")
    assert "'half.pkl'" in str(info.value)


def test_asset_errors_pickle_round_trip() -> None:
    err = UnsafePickleError("x.pkl", "posix.system", how_to_obtain="Get it elsewhere.")
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is UnsafePickleError and str(again) == str(err) and again.global_name == "posix.system"
    plain = AssetError("y.npz", "file not found", what="albedo model", expected="an npz")
    assert str(pickle.loads(pickle.dumps(plain))) == str(plain)


def test_written_tensors_round_trip_views_and_dtypes() -> None:
    """The landmark writer's tensor pickling (deterministic storages) keeps views, strides and dtypes right."""
    from decalite.flame.asset_writer import _TensorPickler

    base = torch.arange(20.0).reshape(4, 5)
    tensors = [base[2:], base[:, 1:3], base.T, torch.zeros(0, 3, dtype=torch.long), torch.tensor(7, dtype=torch.int32)]
    for tensor in tensors:
        buf = io.BytesIO()
        _TensorPickler(buf, protocol=3).dump({"t": tensor})
        loaded = safe_load_pickle(io.BytesIO(buf.getvalue()))["t"]
        assert loaded.dtype == tensor.dtype and torch.equal(loaded, tensor)
        plain = pickle.loads(buf.getvalue())["t"]  # what DECA's np.load(allow_pickle=True) does
        assert torch.equal(plain, tensor)
