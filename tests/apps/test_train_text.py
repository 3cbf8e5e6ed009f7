"""apps.train_text end to end on a slice of the embedded labelled set: the loss falls over a
short run, a checkpoint resumes exactly, bad arguments give one line; TextCNN's shapes, that
every parameter gets a gradient, and the balanced accuracy."""

import numpy as np
import pytest
from apps.models import TextCNN

import needle as ndl
from apps import train_text

SMALL = ["--max-examples", "160", "--batch-size", "32", "--seq-len", "12", "--embedding", "8",
         "--channels", "6", "--widths", "2,3", "--no-progress", "--device", "numpy"]  # fmt: skip


def test_text_cnn_shapes_and_gradients(device):
    model = TextCNN(30, 4, embedding_size=5, channels=3, widths=(1, 2, 4), seq_len=6,
                    device=device)  # fmt: skip
    x = ndl.Tensor(np.random.randint(0, 30, (7, 6)), device=device, requires_grad=False)
    logits = model(x)
    assert logits.shape == (7, 4)
    y = ndl.Tensor(np.random.randint(0, 4, (7,)), device=device, requires_grad=False)
    ndl.nn.SoftmaxLoss()(logits, y).backward()
    names = [name for name, _ in model.named_parameters()]
    assert len(names) == 1 + 2 * 3 + 2  # embedding, (weight, bias) per width, linear
    for name, p in model.named_parameters():
        assert p.grad is not None and np.abs(p.grad.numpy()).sum() > 0, name
    with pytest.raises(ValueError, match="seq_len=6"):
        model(ndl.Tensor(np.zeros((2, 5)), device=device, requires_grad=False))


def text_cnn_reference(model, x):
    """TextCNN's forward in NumPy (eval mode): gather, valid 1-D conv, ReLU, max over time."""
    words = model.embedding.weight.numpy()[x.astype(np.int64)]  # (B, L, D)
    length = x.shape[1]
    features = []
    for conv in model.convs:
        w, b = conv.weight.numpy(), conv.bias.numpy()  # (k, D, C), (C,)
        k = w.shape[0]
        out = sum(np.einsum("bld,dc->blc", words[:, j : length - k + 1 + j], w[j])
                  for j in range(k)) + b  # fmt: skip
        features.append(np.maximum(out, 0).max(axis=1))  # (B, C)
    joined = np.concatenate(features, axis=1)
    return joined @ model.linear.weight.numpy() + model.linear.bias.numpy()


def test_text_cnn_forward_matches_numpy(device):
    model = TextCNN(10, 3, embedding_size=4, channels=5, widths=(1, 3), drop_prob=0.5,
                    seq_len=7, device=device)  # fmt: skip
    model.eval()  # no dropout
    x = np.random.randint(0, 10, (6, 7)).astype(np.float32)
    got = model(ndl.Tensor(x, device=device, requires_grad=False)).numpy()
    np.testing.assert_allclose(got, text_cnn_reference(model, x), rtol=1e-5, atol=1e-5)


def test_balanced_accuracy_weights_every_class_alike():
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 2])
    always_first = np.zeros(8)
    matrix = train_text.confusion(labels, always_first, 4)
    assert matrix[0, 0] == 6 and matrix[1, 0] == 1 and matrix.sum() == 8
    per_class, balanced = train_text.recalls(matrix)
    assert per_class[:3].tolist() == [1.0, 0.0, 0.0] and np.isnan(per_class[3])
    assert balanced == pytest.approx(1 / 3)  # the absent class is left out of the mean


def test_vocabulary_and_encoding():
    rows = [("b", "x y x".split()), ("a", "y z".split())]
    vocab = train_text.build_vocabulary([w for _, w in rows], min_count=2)
    assert vocab == ["<pad>", "<unk>", "x", "y"]
    X, y = train_text.encode(rows, vocab, ["a", "b"], seq_len=2)
    assert X.tolist() == [[2, 3], [3, 1]] and y.tolist() == [1, 0]


def test_training_lowers_the_loss_and_resumes(tmp_path, capsys):
    ckpt = str(tmp_path / "text.ckpt")
    args = SMALL + ["--out", str(tmp_path), "--checkpoint", ckpt, "--lr", "0.01"]
    assert train_text.main(args + ["--epochs", "2"]) == 0
    out = capsys.readouterr().out
    lines = [x for x in out.splitlines() if x.startswith("epoch")]
    losses = [float(x.split("train loss ")[1].split()[0]) for x in lines]
    assert len(losses) == 2 and losses[1] < losses[0]
    assert "balanced" in lines[0] and "recall computers" in lines[0]
    second = lines[1]
    assert train_text.main(args + ["--epochs", "1"]) == 0  # fresh run, first epoch only
    capsys.readouterr()
    assert train_text.main(args[:-2] + ["--checkpoint", str(tmp_path / "one.ckpt"),
                                        "--epochs", "1"]) == 0  # fmt: skip
    assert train_text.main(args[:-2] + ["--checkpoint", str(tmp_path / "one.ckpt"),
                                        "--epochs", "2", "--resume"]) == 0  # fmt: skip
    resumed = [x for x in capsys.readouterr().out.splitlines() if x.startswith("epoch")]
    assert [x.split(" | ")[:2] for x in resumed[1:]] == [second.split(" | ")[:2]]
    history = (tmp_path / "history.csv").read_text().splitlines()
    assert len(history) == 3 and history[0].startswith("epoch,lr,train_loss")


@pytest.mark.parametrize("extra, message", [
    (["--channels", "0"], "--channels must be >= 1"),
    (["--widths", "2,x"], "--widths must be comma-separated integers"),
    (["--widths", "2,13"], "--widths 13 exceeds --seq-len 12"),
    (["--dropout", "1"], "--dropout must be in [0, 1)"),
    (["--optimizer", "lbfgs"], "invalid choice"),
    (["--data", "/nonexistent"], "not found"),
    (["--resume"], "--resume needs --checkpoint"),
    (["--lr", "-1"], "--lr must be a positive number"),
    (["--device", "tpu"], "unknown device"),
])  # fmt: skip
def test_bad_arguments_one_line(extra, message, capsys, tmp_path):
    assert train_text.main(SMALL + ["--out", str(tmp_path)] + extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err


def test_resume_refuses_a_checkpoint_of_another_model(tmp_path, capsys):
    bad = str(tmp_path / "bad.ckpt")
    ndl.save({"format": "something else"}, bad)
    args = SMALL + ["--out", str(tmp_path), "--checkpoint", bad, "--resume"]
    assert train_text.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot use checkpoint") and "\n" not in err


def test_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as exc:
        train_text.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m apps.train_text")
    assert all(opt in out for opt in ("--widths", "--checkpoint", "--resume", "--no-progress"))
