"""needle.save / needle.load: round trips of state dicts, dtypes, errors."""

import zipfile

import numpy as np
import pytest

import needle as ndl
from needle import nn


def test_nested_round_trip_keeps_types_and_dtypes(device, tmp_path):
    t64 = (
        ndl.Tensor(np.random.randn(2, 3), device=device, dtype="float64")
        if "float64" in getattr(device, "dtypes", ("float64",))
        else None
    )
    obj = {
        "w": ndl.Tensor(np.random.randn(3, 2), device=device, dtype="float32"),
        "nested": {0: [1, 2.5, None, True], "name": "résumé", "t": (np.arange(4, dtype=np.int16),)},
        "scalar": np.float32(1.5),
        "nan": float("nan"),
        "f64": t64,
    }
    ndl.save(obj, tmp_path / "ck")  # any file name; no ".npz" appended
    assert (tmp_path / "ck").exists() and not (tmp_path / "ck.npz").exists()
    back = ndl.load(tmp_path / "ck")
    assert isinstance(back["w"], ndl.Tensor) and back["w"].dtype == "float32"
    assert back["w"].device == device
    np.testing.assert_array_equal(back["w"].numpy(), obj["w"].numpy())
    assert back["nested"][0] == [1, 2.5, None, True]
    assert back["nested"]["name"] == "résumé"
    assert isinstance(back["nested"]["t"], tuple) and back["nested"]["t"][0].dtype == np.int16
    assert back["scalar"] == np.float32(1.5) and back["scalar"].dtype == np.float32
    assert np.isnan(back["nan"])
    if t64 is not None:
        assert back["f64"].dtype == "float64"
        np.testing.assert_array_equal(back["f64"].numpy(), t64.numpy())
    raw = ndl.Tensor(np.ones(3), device=device).realize_cached_data()
    ndl.save([raw], tmp_path / "raw.npz")
    loaded = ndl.load(tmp_path / "raw.npz")[0]
    assert type(loaded) is type(raw)
    np.testing.assert_array_equal(np.asarray(loaded), 1)


def test_model_checkpoint_gives_identical_outputs(device, tmp_path):
    def make():
        return nn.Sequential(
            nn.Linear(4, 5, device=device),
            nn.BatchNorm1d(5, device=device),
            nn.ReLU(),
            nn.Linear(5, 2, device=device),
        )

    model = make()
    x = ndl.Tensor(np.random.randn(6, 4), device=device)
    model(x)
    model.eval()
    ndl.save(model.state_dict(), tmp_path / "model.npz")
    fresh = make().eval()
    fresh.load_state_dict(ndl.load(tmp_path / "model.npz"))
    np.testing.assert_array_equal(fresh(x).numpy(), model(x).numpy())


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        ndl.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match="bad.npz"):
        ndl.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, x=np.zeros(2))
    with pytest.raises(ValueError, match="not a needle checkpoint"):
        ndl.load(other)
    obj_arr = tmp_path / "objects.npz"
    with zipfile.ZipFile(obj_arr, "w"):
        pass
    with pytest.raises(ValueError, match="objects.npz"):
        ndl.load(obj_arr)
    with pytest.raises(TypeError, match="cannot store"):
        ndl.save({"f": print}, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_no_pickle_in_container(tmp_path):
    ndl.save({"a": np.arange(3)}, tmp_path / "c.npz")
    with np.load(tmp_path / "c.npz", allow_pickle=False) as f:
        assert all(f[name].dtype != object for name in f.files)


def test_a_pickle_is_refused_unread(tmp_path):
    import pickle

    path = tmp_path / "old.ckpt"
    with open(path, "wb") as f:
        pickle.dump({"weights": [1, 2, 3]}, f)
    with pytest.raises(ValueError, match="pickle"):
        ndl.load(path)
    with pytest.raises(ValueError, match="directory"):
        ndl.load(tmp_path)
