"""needle.data: DataLoader order/batching, transforms, MNIST/CIFAR-10/PTB readers."""

import gzip
import os
import pickle
import struct

import numpy as np
import pytest

import needle as ndl
from needle import data


def _rng_state():
    """The global RNG's position (key array and index): equal states mean equal draws."""
    _, key, pos, *_ = np.random.get_state()
    return key.tobytes(), pos


# --- DataLoader ----------------------------------------------------------------------------


def test_course_seeded_shuffle_order():
    np.random.seed(0)
    loader = data.DataLoader(data.NDArrayDataset(np.arange(100)), batch_size=1, shuffle=True)
    first = np.array([batch[0].numpy().item() for _, batch in zip(range(10), loader)])
    np.random.seed(0)
    np.testing.assert_array_equal(first, np.random.permutation(100)[:10])
    second = np.array([batch[0].numpy().item() for batch in loader])  # a fresh draw per iter()
    assert sorted(second) == list(range(100)) and not np.array_equal(second[:10], first)


def test_batching_and_drop_last(device):
    x = np.arange(100 * 3, dtype=np.float32).reshape(100, 3)
    y = np.arange(100) % 7
    loader = data.DataLoader(data.NDArrayDataset(x, y), batch_size=32, device=device)
    batches = list(loader)
    assert [b[0].shape for b in batches] == [(32, 3), (32, 3), (32, 3), (4, 3)] and len(loader) == 4
    xb, yb = batches[3]
    assert isinstance(xb, ndl.Tensor) and not xb.requires_grad and xb.device == device
    np.testing.assert_array_equal(xb.numpy(), x[96:])
    np.testing.assert_array_equal(yb.numpy(), y[96:])
    dropped = data.DataLoader(data.NDArrayDataset(x, y), batch_size=32, drop_last=True)
    assert [b[0].shape[0] for b in dropped] == [32, 32, 32] and len(dropped) == 3
    np.random.seed(5)
    shuffled = np.concatenate(
        [
            b[1].numpy()
            for b in data.DataLoader(data.NDArrayDataset(x, y), batch_size=30, shuffle=True)
        ]
    )
    np.random.seed(5)
    np.testing.assert_array_equal(shuffled, y[np.random.permutation(100)])
    with pytest.raises(ValueError, match="batch_size"):
        data.DataLoader(data.NDArrayDataset(x), batch_size=0)


def test_loader_dtype_and_int_only_datasets():
    class Squares(data.Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.array([i * i], dtype=np.float32), i

    batches = list(data.DataLoader(Squares(), batch_size=2, dtype="float64"))
    assert len(batches) == 3 and batches[0][0].dtype == "float64"
    np.testing.assert_array_equal(batches[1][0].numpy().ravel(), [4, 9])
    np.testing.assert_array_equal(batches[2][1].numpy(), [4])
    with pytest.raises(ValueError, match="differ in length"):
        data.NDArrayDataset(np.zeros(3), np.zeros(4))


# --- transforms ----------------------------------------------------------------------------


def test_flip_draws_once_and_flips_width():
    img = np.random.rand(4, 5, 2)
    np.random.seed(3)
    u = np.random.rand()
    np.random.seed(3)
    out = data.RandomFlipHorizontal(p=0.6)(img)
    np.testing.assert_array_equal(out, img[:, ::-1] if u < 0.6 else img)
    np.random.seed(3)
    np.random.rand()
    expected_state = _rng_state()
    np.random.seed(3)
    data.RandomFlipHorizontal(p=0.6)(img)
    assert _rng_state() == expected_state
    np.testing.assert_array_equal(data.RandomFlipHorizontal(p=1.0)(img), img[:, ::-1, :])
    np.testing.assert_array_equal(data.RandomFlipHorizontal(p=0.0)(img), img)


def test_crop_course_semantics():
    img = np.random.rand(6, 7, 3)
    for seed in range(5):
        np.random.seed(seed)
        sx, sy = np.random.randint(low=-2, high=3, size=2)
        after = _rng_state()
        np.random.seed(seed)
        out = data.RandomCrop(padding=2)(img)
        assert _rng_state() == after  # exactly one draw
        padded = np.zeros((10, 11, 3))
        padded[2:8, 2:9] = img
        np.testing.assert_array_equal(out, padded[2 + sx : 8 + sx, 2 + sy : 9 + sy])
        assert out.shape == img.shape
    np.testing.assert_array_equal(data.RandomCrop(padding=0)(img), img)
    with pytest.raises(ValueError, match="H×W×C"):
        data.RandomCrop(2)(np.zeros((3, 3)))


def test_normalize():
    img = np.random.rand(3, 3, 2).astype(np.float32)
    out = data.Normalize(mean=[0.5, 0.2], std=[0.1, 2.0])(img)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (img - [0.5, 0.2]) / [0.1, 2.0], rtol=1e-6)
    with pytest.raises(ValueError, match="channels"):
        data.Normalize([0.1, 0.2, 0.3], [1, 1, 1])(img)


# --- MNIST ---------------------------------------------------------------------------------


def _idx_bytes(array, type_code=0x08):
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(">u1").tobytes()


def _write_mnist(folder, n=6, gz=True, rng=None):
    rng = rng or np.random.RandomState(0)
    images = rng.randint(0, 256, size=(n, 28, 28)).astype(np.uint8)
    labels = rng.randint(0, 10, size=n).astype(np.uint8)
    suffix = ".gz" if gz else ""
    opener = gzip.open if gz else open
    paths = []
    for name, array in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
        path = os.path.join(folder, name + suffix)
        with opener(path, "wb") as f:
            f.write(_idx_bytes(array))
        paths.append(path)
    return paths, images, labels


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_mnist_reads_idx(tmp_path, gz):
    (img_path, lbl_path), images, labels = _write_mnist(str(tmp_path), gz=gz)
    state = _rng_state()
    ds = data.MNISTDataset(img_path, lbl_path)
    assert _rng_state() == state  # construction draws nothing
    assert len(ds) == 6
    x, y = ds[2]
    assert x.shape == (28, 28, 1) and x.dtype == np.float32 and y == labels[2]
    np.testing.assert_array_equal(x[..., 0], images[2].astype(np.float32) / 255)
    xb, yb = ds[np.array([4, 0, 1])]
    assert xb.shape == (3, 28, 28, 1)
    np.testing.assert_array_equal(yb, labels[[4, 0, 1]])
    np.testing.assert_array_equal(ds.X[:, :, :, 0], images.astype(np.float32) / 255)


def test_mnist_transforms_per_image_in_order(tmp_path):
    (img_path, lbl_path), images, _ = _write_mnist(str(tmp_path))
    ds = data.MNISTDataset(
        img_path, lbl_path, transforms=[data.RandomCrop(3), data.RandomFlipHorizontal()]
    )
    np.random.seed(1)
    batch, _ = ds[np.array([0, 1, 2])]
    np.random.seed(1)
    crop, flip = data.RandomCrop(3), data.RandomFlipHorizontal()
    expected = [flip(crop(images[i, :, :, None].astype(np.float32) / 255)) for i in range(3)]
    np.testing.assert_array_equal(batch, np.stack(expected))


def test_mnist_loader_batches(tmp_path, device):
    (img_path, lbl_path), images, labels = _write_mnist(str(tmp_path), n=10)
    loader = data.DataLoader(data.MNISTDataset(img_path, lbl_path), batch_size=4, device=device)
    xs = [b[0] for b in loader]
    assert [x.shape for x in xs] == [(4, 28, 28, 1), (4, 28, 28, 1), (2, 28, 28, 1)]
    assert xs[0].dtype == "float32"


def test_mnist_errors_name_the_file(tmp_path):
    (img_path, lbl_path), images, labels = _write_mnist(str(tmp_path), gz=False)
    with pytest.raises(FileNotFoundError, match="nothere.gz"):
        data.MNISTDataset(str(tmp_path / "nothere.gz"), lbl_path)
    bad = tmp_path / "bad-magic"
    bad.write_bytes(b"\x12\x34\x08\x03" + b"\0" * 20)
    with pytest.raises(ValueError, match="bad-magic.*not an IDX file"):
        data.MNISTDataset(str(bad), lbl_path)
    short = tmp_path / "short"
    short.write_bytes(_idx_bytes(images)[:-10])
    with pytest.raises(ValueError, match="short.*expected"):
        data.MNISTDataset(str(short), lbl_path)
    with pytest.raises(ValueError, match="labels-idx1-ubyte.*1-d array, expected 3-d"):
        data.MNISTDataset(lbl_path, lbl_path)
    fewer = tmp_path / "fewer"
    fewer.write_bytes(_idx_bytes(labels[:4]))
    with pytest.raises(ValueError, match="6 images but.*fewer.*4 labels"):
        data.MNISTDataset(img_path, str(fewer))
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(_idx_bytes(images))[:-30])
    with pytest.raises(ValueError, match="broken.gz"):
        data.MNISTDataset(str(broken), lbl_path)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.*empty file"):
        data.MNISTDataset(str(empty), lbl_path)


# --- CIFAR-10 ------------------------------------------------------------------------------


def _write_cifar(folder, per_batch=2, protocol=2):
    base = os.path.join(folder, "cifar-10-batches-py")
    os.makedirs(base)
    rng = np.random.RandomState(1)
    everything = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = per_batch + (1 if name == "test_batch" else 0)
        images = rng.randint(0, 256, size=(n, 3072)).astype(np.uint8)
        labels = [int(v) for v in rng.randint(0, 10, size=n)]
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": images,
            b"filenames": [b"img%d.png" % i for i in range(n)],
        }
        with open(os.path.join(base, name), "wb") as f:
            pickle.dump(batch, f, protocol=protocol)
        everything[name] = (images, labels)
    return base, everything


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL], ids=["py2-style", "latest"])
def test_cifar_reads_batches(tmp_path, protocol):
    base, batches = _write_cifar(str(tmp_path), protocol=protocol)
    state = _rng_state()
    train = data.CIFAR10Dataset(base, train=True)
    assert _rng_state() == state
    assert len(train) == 10
    images = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    labels = sum((batches[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    x, y = train[3]
    assert x.shape == (3, 32, 32) and x.dtype == np.float32 and y == labels[3]
    np.testing.assert_array_equal(x, images[3].reshape(3, 32, 32).astype(np.float32) / 255)
    xb, yb = train[np.array([9, 0])]
    assert xb.shape == (2, 3, 32, 32)
    np.testing.assert_array_equal(yb, [labels[9], labels[0]])
    test = data.CIFAR10Dataset(base, train=False)
    assert len(test) == 3 and test.X.shape == (3, 3, 32, 32) and test.X.max() <= 1.0


def test_cifar_transforms_act_on_spatial_axes(tmp_path, device):
    base, _ = _write_cifar(str(tmp_path))
    plain = data.CIFAR10Dataset(base, train=True)
    flipped = data.CIFAR10Dataset(base, train=True, transforms=[data.RandomFlipHorizontal(p=1.0)])
    np.testing.assert_array_equal(
        flipped[np.array([1, 2])][0], plain[np.array([1, 2])][0][..., ::-1]
    )
    loader = data.DataLoader(flipped, batch_size=4, shuffle=True, device=device)
    x, y = next(iter(loader))
    assert x.shape == (4, 3, 32, 32) and x.dtype == "float32" and y.shape == (4,)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar_errors(tmp_path):
    base, _ = _write_cifar(str(tmp_path))
    os.remove(os.path.join(base, "data_batch_4"))
    with pytest.raises(FileNotFoundError, match="data_batch_4"):
        data.CIFAR10Dataset(base, train=True)
    with open(os.path.join(base, "test_batch"), "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match="test_batch.*expected \\(N, 3072\\)"):
        data.CIFAR10Dataset(base, train=False)
    with open(os.path.join(base, "test_batch"), "wb") as f:
        f.write(b"garbage")
    with pytest.raises(ValueError, match="test_batch.*not a CIFAR-10 python batch"):
        data.CIFAR10Dataset(base, train=False)
    with open(os.path.join(base, "test_batch"), "wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": []}, f)
    with pytest.raises(ValueError, match="refusing to load"):
        data.CIFAR10Dataset(base, train=False)


# --- Penn Treebank helpers -----------------------------------------------------------------


def test_ptb_corpus_batchify_get_batch(tmp_path, device):
    (tmp_path / "train.txt").write_text(" the cat sat\n the dog\n a cat ran\n")
    (tmp_path / "test.txt").write_text(" a dog sat\n")
    corpus = data.Corpus(str(tmp_path))
    words = ["the", "cat", "sat", "<eos>", "dog", "a", "ran"]
    assert corpus.dictionary.idx2word == words and len(corpus.dictionary) == 7
    assert corpus.train == [0, 1, 2, 3, 0, 4, 3, 5, 1, 6, 3]
    assert corpus.test == [5, 4, 2, 3]
    assert data.Corpus(str(tmp_path), max_lines=1).train == [0, 1, 2, 3]
    batches = data.batchify(corpus.train, batch_size=2, device=device, dtype="float32")
    np.testing.assert_array_equal(batches, np.array(corpus.train[:10]).reshape(2, 5).T)
    x, y = data.get_batch(batches, 1, bptt=3, device=device)
    assert x.shape == (3, 2) and y.shape == (6,) and x.device == device and x.dtype == "float32"
    np.testing.assert_array_equal(x.numpy(), batches[1:4])
    np.testing.assert_array_equal(y.numpy(), batches[2:5].reshape(-1))
    x, y = data.get_batch(batches, 3, bptt=3, device=device)
    assert x.shape == (1, 2) and y.shape == (2,)  # L = min(bptt, nbatch - 1 - i)
    with pytest.raises(FileNotFoundError, match="valid.txt|train.txt"):
        data.Corpus(str(tmp_path / "nowhere"))
