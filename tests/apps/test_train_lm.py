"""apps.train_lm end to end on a slice of the embedded corpus: the loss falls over a short
run, a checkpoint resumes, bad arguments give one line; the language model's shapes and that
every parameter gets a gradient."""

import math

import numpy as np
import pytest
from apps.models import LanguageModel

import needle as ndl
from apps import train_lm

SMALL = ["--max-tokens", "1200", "--batch-size", "8", "--seq-len", "10", "--hidden", "16",
         "--embedding", "8", "--no-progress", "--device", "numpy"]  # fmt: skip


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_language_model_shapes_and_gradients(kind, device):
    np.random.seed(0)
    model = LanguageModel(6, 20, 5, num_layers=2, seq_model=kind, device=device)
    x = ndl.Tensor(np.random.randint(0, 20, (7, 3)), device=device, requires_grad=False)
    logits, h = model(x)
    assert logits.shape == (21, 20)
    states = h if kind == "lstm" else (h,)
    assert all(s.shape == (2, 3, 5) for s in states)
    y = ndl.Tensor(np.random.randint(0, 20, (21,)), device=device, requires_grad=False)
    ndl.nn.SoftmaxLoss()(logits, y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and np.abs(p.grad.numpy()).sum() > 0, name


def test_training_lowers_the_loss_and_resumes(tmp_path, capsys):
    ckpt = str(tmp_path / "lm.npz")
    args = SMALL + ["--out", str(tmp_path), "--checkpoint", ckpt, "--lr", "0.01"]
    assert train_lm.main(args + ["--epochs", "2"]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("epoch")]
    perplexities = [float(x.split("train perplexity ")[1].split()[0]) for x in lines]
    assert len(perplexities) == 2 and perplexities[1] < perplexities[0]
    assert train_lm.main(args + ["--epochs", "3", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "epoch 3:" in out and "epoch 1:" not in out
    history = (tmp_path / "history.csv").read_text().splitlines()
    assert len(history) == 4 and math.isfinite(float(history[-1].split(",")[2]))


@pytest.mark.parametrize("extra, message", [
    (["--hidden", "0"], "--hidden must be >= 1"),
    (["--model", "transformer"], "invalid choice"),
    (["--data", "ptb:/nonexistent"], "not found"),
    (["--resume"], "--resume needs --checkpoint"),
    (["--lr", "-1"], "--lr must be > 0"),
])  # fmt: skip
def test_bad_arguments_one_line(extra, message, capsys):
    assert train_lm.main(SMALL + extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
