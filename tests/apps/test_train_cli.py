"""python -m apps.train end to end on a slice of the embedded data: train, checkpoint, resume
(bit-exact), eval-only, curves, Ctrl-C, and one-line errors."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

import needle as ndl
from apps import checkpoint as ckpt
from apps import train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEVICE = "cpu" if ndl.cpu().enabled() else "numpy"
BASE = ["--limit", "96", "--batch-size", "32", "--device", DEVICE, "--no-progress", "--lr", "0.01"]


def run(argv, capsys):
    code = train.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def read_history(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_train_writes_checkpoint_csv_and_png(tmp_path, capsys):
    ck, out_dir = str(tmp_path / "m.ckpt"), str(tmp_path / "out")
    code, out, err = run(BASE + ["--epochs", "1", "--checkpoint", ck, "--out", out_dir], capsys)
    assert code == 0, err
    assert "epoch 1/1" in out and "test loss" in out and "img/s" in out
    rows = read_history(os.path.join(out_dir, "history.csv"))
    assert [r["epoch"] for r in rows] == ["1"]
    assert 0.0 <= float(rows[0]["test_acc"]) <= 1.0
    payload = ckpt.load(ck)
    assert payload["epoch"] == 1 and payload["model"] == "cnn" and len(payload["history"]) == 1
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in out
    else:
        with open(os.path.join(out_dir, "curves.png"), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def _interrupt_at_call(monkeypatch, n):
    """Make the trainer's n-th ``run_epoch`` call raise KeyboardInterrupt before any batch."""
    calls = []
    real = train.run_epoch

    def patched(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "run_epoch", patched)


@pytest.mark.parametrize("schedule, interrupted", [("none", False), ("cosine", True)])
def test_resume_continues_exactly(tmp_path, capsys, monkeypatch, schedule, interrupted):
    straight, split = str(tmp_path / "a.ckpt"), str(tmp_path / "b.ckpt")
    common = BASE + ["--schedule", schedule, "--out", str(tmp_path / "o")]
    assert run(common + ["--epochs", "2", "--checkpoint", straight], capsys)[0] == 0
    if interrupted:  # Ctrl-C as epoch 2 starts (calls: train 1, test 1, train 2)
        with monkeypatch.context() as m:
            _interrupt_at_call(m, 3)
            assert run(common + ["--epochs", "2", "--checkpoint", split], capsys)[0] == 130
    else:  # a one-epoch run extended to two (constant learning rate: same trajectory)
        assert run(common + ["--epochs", "1", "--checkpoint", split], capsys)[0] == 0
    code, out, err = run(common + ["--epochs", "2", "--checkpoint", split, "--resume"], capsys)
    assert code == 0, err
    assert "epoch 1/2" not in out and "epoch 2/2" in out
    a, b = ckpt.load(straight), ckpt.load(split)
    assert a["epoch"] == b["epoch"] == 2
    for key in a["model_state"]:
        np.testing.assert_array_equal(a["model_state"][key], b["model_state"][key], err_msg=key)
    for field in ("train_loss", "train_acc", "test_loss", "test_acc", "lr"):
        assert [h[field] for h in a["history"]] == [h[field] for h in b["history"]], field


def test_eval_only_reports_the_checkpoint_accuracy(tmp_path, capsys):
    ck = str(tmp_path / "m.ckpt")
    assert run(BASE + ["--epochs", "1", "--checkpoint", ck, "--out", str(tmp_path)], capsys)[0] == 0
    expected = ckpt.load(ck)["history"][-1]["test_acc"]
    code, out, err = run(BASE + ["--checkpoint", ck, "--eval-only"], capsys)
    assert code == 0, err
    assert f"acc {100 * expected:.2f}%" in out


def test_resnet9_takes_the_mnist_images(tmp_path, capsys):
    code, out, err = run(
        BASE + ["--model", "resnet9", "--limit", "32", "--epochs", "1", "--out", str(tmp_path)],
        capsys,
    )
    assert code == 0, err
    assert "431,946 parameters" in out


def test_ctrl_c_saves_a_checkpoint(tmp_path, capsys, monkeypatch):
    _interrupt_at_call(monkeypatch, 3)  # as epoch 2 starts
    code, out, err = run(BASE + ["--epochs", "3", "--out", str(tmp_path)], capsys)
    assert code == 130
    path = tmp_path / "interrupted.ckpt"
    assert "interrupted" in err and str(path) in err
    payload = ckpt.load(str(path))
    assert payload["interrupted"] and payload["epoch"] == 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "vgg"], "unknown model 'vgg'"),
        (["--data", "mnist:/no/such/folder"], "data folder not found: /no/such/folder"),
        (["--data", "cifar10:/no/such/folder"], "data folder not found"),
        (["--resume"], "need --checkpoint"),
        (["--eval-only", "--checkpoint", "/no/such.ckpt"], "checkpoint not found"),
        (["--epochs", "zero"], "invalid int value"),
        (["--optimizer", "lbfgs"], "unknown optimizer"),
        (["--dtype", "float16"], "--dtype must be float32 or float64"),
        (["--schedule", "linear"], "unknown schedule"),
        (["--augment", "mixup"], "invalid choice: 'mixup'"),
        (["--lr", "nan"], "--lr must be a positive number"),
        (["--lr", "-1"], "--lr must be a positive number"),
        (["--lr", "0"], "--lr must be a positive number"),
        (["--weight-decay", "-1"], "--weight-decay must be a number >= 0"),
        (["--weight-decay", "inf"], "--weight-decay must be a number >= 0"),
        (["--out", "/proc/forbidden/x"], "--out /proc/forbidden/x: cannot create or write in it"),
        (["--checkpoint", "/"], "is a folder"),
        (["--checkpoint", "/no_such_dir_here/x.ckpt"], "folder /no_such_dir_here does not exist"),
    ],
)
def test_errors_are_one_line_with_status_2(argv, message, capsys):
    code, out, err = run(argv, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


def test_cuda_unavailable_is_one_line(capsys):
    if ndl.cuda().enabled():
        pytest.skip("a CUDA device is available here")
    code, out, err = run(["--device", "cuda"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--device cuda is not available" in err


def test_module_entry_point_reports_errors_without_traceback():
    proc = subprocess.run(
        [sys.executable, "-m", "apps.train", "--model", "nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.strip().startswith("error: unknown model")


def test_mnist_folder_data(capsys, tmp_path):
    from apps.datasets import EMBEDDED_DIR

    argv = BASE + ["--data", f"mnist:{EMBEDDED_DIR}", "--limit", "40", "--epochs", "1"]
    code, out, err = run(argv + ["--out", str(tmp_path)], capsys)
    assert code == 0, err
    assert f"mnist:{EMBEDDED_DIR}, 40 train / 40 test" in out
    assert "augment" not in out  # digits are not flipped


def test_cifar10_folder_data(capsys, tmp_path):
    import pickle

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.RandomState(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.randint(0, 256, (8, 3072), dtype=np.uint8),
            b"labels": rng.randint(0, 10, 8).tolist(),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    for model in ("cnn", "resnet9"):
        argv = BASE + ["--data", f"cifar10:{folder}", "--model", model, "--epochs", "1"]
        code, out, err = run(argv + ["--out", str(tmp_path)], capsys)
        assert code == 0, err
        assert "40 train / 8 test" in out
        assert "augment flip-crop" in out  # the default for CIFAR-10


def test_flip_crop_matches_per_image_flips_and_crops():
    from apps.engine import flip_crop

    X = np.random.RandomState(1).randn(6, 2, 5, 7).astype(np.float32)
    out = flip_crop(X, np.random.RandomState(3), padding=2)
    # The same draws, replayed image by image: flips first, then (row, col) offsets.
    rng = np.random.RandomState(3)
    flip = rng.random_sample(6) < 0.5
    offsets = rng.randint(0, 5, size=(2, 6))
    assert flip.any() and not flip.all()
    for i in range(6):
        image = X[i, :, :, ::-1] if flip[i] else X[i]
        padded = np.pad(image, ((0, 0), (2, 2), (2, 2)))
        r, c = offsets[:, i]
        np.testing.assert_array_equal(out[i], padded[:, r : r + 5, c : c + 7])


class _RunsCode:
    """Unpickling this object calls os.mkdir(path): a stand-in for a malicious checkpoint."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


@pytest.mark.parametrize("flag", ["--resume", "--eval-only"])
def test_a_pickled_checkpoint_is_refused_without_running_its_code(flag, tmp_path, capsys):
    import pickle

    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.ckpt"
    with open(evil, "wb") as f:
        pickle.dump({"format": "needle-train-checkpoint/1", "x": _RunsCode(str(marker))}, f)
    code, out, err = run(BASE + [flag, "--checkpoint", str(evil), "--out", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and "pickle" in err, err
    assert not marker.exists()


def test_a_garbage_checkpoint_is_a_one_line_error(tmp_path, capsys):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(np.random.RandomState(0).bytes(4096))
    code, out, err = run(BASE + ["--eval-only", "--checkpoint", str(junk)], capsys)
    assert code == 2 and err.count("\n") == 1 and "cannot use checkpoint" in err, err


def test_output_places_are_checked_before_any_data_is_read(tmp_path, capsys, monkeypatch):
    # A file where the output folder should be: one line, exit 2, and no data was loaded.
    blocker = tmp_path / "out"
    blocker.write_text("")
    monkeypatch.setattr(train, "load_data", lambda spec: pytest.fail("data loaded first"))
    code, out, err = run(BASE + ["--out", str(blocker)], capsys)
    assert code == 2 and "exists and is not a folder" in err and err.count("\n") == 1
    code, out, err = run(BASE + ["--checkpoint", str(tmp_path / "missing" / "x.ckpt")], capsys)
    assert code == 2 and "does not exist" in err
    assert not (tmp_path / "missing").exists()  # no parent folder made behind the user's back


def _diverging_loss_at(call, monkeypatch):
    """Make the app's SoftmaxLoss give nan on its ``call``-th use (train and test batches)."""
    calls = {"n": 0}
    real = ndl.nn.SoftmaxLoss

    class Diverging(real):
        def forward(self, logits, y):
            loss = real.forward(self, logits, y)
            calls["n"] += 1
            return loss * float("nan") if calls["n"] == call else loss

    monkeypatch.setattr(ndl.nn, "SoftmaxLoss", Diverging)


def test_a_nonfinite_loss_stops_training_and_keeps_the_last_good_checkpoint(
    tmp_path, capsys, monkeypatch
):
    # 96 images in batches of 32: epoch 1 is 3 training losses and 1 test loss, so the 5th
    # loss is epoch 2's first step.
    _diverging_loss_at(5, monkeypatch)
    path = tmp_path / "run.ckpt"
    argv = BASE + ["--epochs", "3", "--checkpoint", str(path), "--out", str(tmp_path)]
    code, out, err = run(argv, capsys)
    assert code == 1 and err.count("\n") == 1, err
    assert "diverged: loss nan at epoch 2, step 1" in err and "--skip-nonfinite" in err
    assert ckpt.load(str(path))["epoch"] == 1  # not overwritten by the diverged epoch
    assert len(read_history(tmp_path / "history.csv")) == 1


def test_skip_nonfinite_leaves_such_batches_out(tmp_path, capsys, monkeypatch):
    _diverging_loss_at(2, monkeypatch)
    argv = BASE + ["--epochs", "1", "--skip-nonfinite", "--out", str(tmp_path)]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "(1 non-finite batches skipped)" in out
    row = read_history(tmp_path / "history.csv")[0]
    assert np.isfinite(float(row["train_loss"]))


def test_ctrl_c_at_random_moments_always_saves_and_exits_130(tmp_path, capsys, monkeypatch):
    # A real SIGINT at a random moment of training (forward, backward, the optimizer,
    # evaluation, writing a checkpoint...): every run ends with status 130 and a loadable
    # checkpoint.
    import signal
    import threading

    real_fit = train.fit
    rng = np.random.default_rng(1)
    timers = []

    def fit_interrupted_after(*args):
        timer = threading.Timer(float(rng.uniform(0.001, 0.25)), os.kill,
                                (os.getpid(), signal.SIGINT))
        timers.append(timer)
        timer.start()
        return real_fit(*args)

    monkeypatch.setattr(train, "fit", fit_interrupted_after)
    path = tmp_path / "run.ckpt"
    argv = BASE + ["--epochs", "500", "--checkpoint", str(path), "--out", str(tmp_path)]
    for _ in range(100):
        code, out, err = run(argv, capsys)
        timers[-1].join()
        assert code == 130, err
        assert ckpt.load(str(path))["interrupted"]
        path.unlink()
    assert not list(tmp_path.glob("*.tmp"))


def test_a_checkpoint_of_another_model_names_what_differs(tmp_path, capsys):
    path = tmp_path / "cnn.ckpt"
    argv = BASE + ["--epochs", "1", "--checkpoint", str(path), "--out", str(tmp_path)]
    assert run(argv, capsys)[0] == 0
    code, out, err = run(BASE + ["--eval-only", "--checkpoint", str(path), "--model", "resnet9"],
                         capsys)
    assert code == 2 and "holds a 'cnn' model" in err, err
    payload = ckpt.load(str(path))
    name = next(iter(payload["model_state"]))
    payload["model_state"][name] = np.zeros((2, 2), dtype=np.float32)
    ckpt.save(str(path), {k: v for k, v in payload.items() if k != "format"})
    code, out, err = run(BASE + ["--eval-only", "--checkpoint", str(path)], capsys)
    assert code == 2 and err.count("\n") == 1 and repr(name) in err and "(2, 2)" in err, err
