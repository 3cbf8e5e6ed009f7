"""python -m apps.segment end to end on a small slice (train, picture, checkpoint, resume,
one-line errors), the shapes generator's determinism, and the metrics against hand counts."""

import os
import re

import numpy as np
import pytest
from apps.shapes import CLASSES, make_shapes

import needle as ndl
from apps import checkpoint as ckpt
from apps import segment

DEVICE = "cpu" if ndl.cpu().enabled() else "numpy"
SMALL = ["--train-size", "16", "--test-size", "8", "--batch-size", "8", "--width", "4"]
BASE = SMALL + ["--size", "16", "--device", DEVICE, "--no-progress"]


def run(argv, capsys):
    code = segment.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# --- data --------------------------------------------------------------------------------------
def test_shapes_are_deterministic_and_well_formed():
    x1, m1 = make_shapes(6, 16, seed=3)
    x2, m2 = make_shapes(6, 16, seed=3)
    x3, _ = make_shapes(6, 16, seed=4)
    assert x1.shape == (6, 1, 16, 16) and x1.dtype == np.float32
    assert m1.shape == (6, 16, 16) and m1.dtype == np.int64
    assert np.array_equal(x1, x2) and np.array_equal(m1, m2)
    assert not np.array_equal(x1, x3)
    assert 0.0 <= x1.min() and x1.max() <= 1.0
    assert set(np.unique(m1)) <= set(range(len(CLASSES)))
    assert (m1 > 0).any(axis=(1, 2)).all()  # every image has a shape
    # a prefix of a larger set is the smaller set (drawn image by image)
    x4, m4 = make_shapes(10, 16, seed=3)
    assert np.array_equal(x4[:6], x1) and np.array_equal(m4[:6], m1)


def test_shapes_reject_bad_sizes():
    with pytest.raises(ValueError, match="size"):
        make_shapes(2, 4)
    with pytest.raises(ValueError, match="n must be"):
        make_shapes(-1)


# --- metrics -----------------------------------------------------------------------------------
def test_metrics_against_hand_counts():
    true = np.array([[0, 0, 1], [1, 2, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    cm = segment.confusion_matrix(pred, true, 4)
    # rows: true class, columns: predicted class
    expected = np.zeros((4, 4), dtype=np.int64)
    expected[0, 0], expected[0, 1] = 1, 1
    expected[1, 1] = 2
    expected[2, 2], expected[2, 0] = 1, 1
    assert np.array_equal(cm, expected)
    assert segment.pixel_accuracy(cm) == pytest.approx(4 / 6)
    # class 0: TP 1, FP 1 (a 2 predicted 0), FN 1 -> 1/3; class 1: TP 2, FP 1, FN 0 -> 2/3;
    # class 2: TP 1, FP 0, FN 1 -> 1/2; class 3: absent and never predicted -> nan
    iou = segment.iou_per_class(cm)
    assert iou[:3] == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert np.isnan(iou[3])
    assert segment.mean_iou(cm) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)


def test_metrics_of_a_perfect_and_an_all_wrong_prediction():
    true = np.array([0, 1, 2, 3, 3])
    perfect = segment.confusion_matrix(true, true, 4)
    assert segment.pixel_accuracy(perfect) == 1.0 and segment.mean_iou(perfect) == 1.0
    wrong = segment.confusion_matrix((true + 1) % 4, true, 4)
    assert segment.pixel_accuracy(wrong) == 0.0 and segment.mean_iou(wrong) == 0.0


# --- the model ---------------------------------------------------------------------------------
def test_unet_keeps_the_image_size_and_upsamples_with_transposed_convs():
    model = segment.UNet(1, 4, width=4)
    x = ndl.Tensor(np.zeros((2, 1, 16, 12), dtype=np.float32), requires_grad=False)
    assert model(x).shape == (2, 4, 16, 12)
    assert isinstance(model.up1, ndl.nn.ConvTranspose2d)
    assert isinstance(model.up2, ndl.nn.ConvTranspose2d)


# --- the command line --------------------------------------------------------------------------
def test_segment_trains_and_writes_picture_and_checkpoint(tmp_path, capsys):
    ck, out_dir = str(tmp_path / "seg.ckpt"), str(tmp_path / "out")
    code, out, err = run(BASE + ["--epochs", "1", "--checkpoint", ck, "--out", out_dir], capsys)
    assert code == 0, err
    assert "epoch 1/1" in out and re.search(r"mean IoU [01]\.\d\d ", out), out
    payload = ckpt.load(ck)
    assert payload["epoch"] == 1 and payload["model"] == "unet"
    assert 0.0 <= payload["history"][0]["mean_iou"] <= 1.0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in out
    else:
        with open(os.path.join(out_dir, segment.PICTURE), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_interrupt_then_resume_continues_as_one_uninterrupted_run(tmp_path, capsys, monkeypatch):
    straight, split = str(tmp_path / "a.ckpt"), str(tmp_path / "b.ckpt")
    common = BASE + ["--epochs", "2", "--out", str(tmp_path / "out")]
    assert run(common + ["--checkpoint", straight], capsys)[0] == 0
    calls, real = [], segment.run_epoch

    def interrupted_in_epoch_2(*args, **kwargs):  # Ctrl-C before the second epoch's batches
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(segment, "run_epoch", interrupted_in_epoch_2)
    code, _, err = run(common + ["--checkpoint", split], capsys)
    assert code == 130 and f"saved {split}" in err
    assert ckpt.load(split)["epoch"] == 1
    monkeypatch.setattr(segment, "run_epoch", real)
    code, out, err = run(common + ["--checkpoint", split, "--resume"], capsys)
    assert code == 0, err
    assert "epoch 2/2" in out and "epoch 1/2" not in out
    a, b = ckpt.load(straight), ckpt.load(split)
    assert b["epoch"] == 2
    for name, value in a["model_state"].items():
        assert np.array_equal(value, b["model_state"][name]), name
    assert [r["mean_iou"] for r in a["history"]] == [r["mean_iou"] for r in b["history"]]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--size", "30"], "--size must be a multiple of 4"),
        (["--lr", "nan"], "--lr must be a positive number"),
        (["--resume"], "--resume needs --checkpoint"),
        (["--device", "tpu"], "unknown device"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_are_one_line_errors(argv, message, tmp_path, capsys):
    code, out, err = run(argv + ["--out", str(tmp_path / "out")], capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1


def test_resume_from_a_checkpoint_of_another_model_is_a_one_line_error(tmp_path, capsys):
    from apps import train

    ck = str(tmp_path / "cnn.ckpt")
    argv = ["--limit", "32", "--batch-size", "32", "--device", DEVICE, "--no-progress"]
    assert train.main(argv + ["--epochs", "1", "--checkpoint", ck, "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    code, _, err = run(BASE + ["--checkpoint", ck, "--resume", "--out", str(tmp_path)], capsys)
    assert code == 2 and "'cnn' model, not 'unet'" in err and err.count("\n") == 1


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as info:
        segment.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--epochs", "--checkpoint", "--resume", "--no-progress", "--out"):
        assert option in out
