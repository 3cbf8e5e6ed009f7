"""python -m apps.summary: the layer table, and one-line errors (exit 2) for inputs a model
cannot take."""

import pytest

import needle as ndl
from apps import summary


def test_prints_the_resnet9_table(capsys):
    assert summary.main(["--model", "resnet9"]) == 0
    out = capsys.readouterr().out
    assert "ResNet9" in out and "431,946" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--input", "3,32"], "--input must be three positive integers"),
        (["--input", "0,28,28"], "--input must be three positive integers"),
        (["--input", "a,b,c"], "--input must be three positive integers"),
        (["--batch", "0"], "--batch must be >= 1"),
        (["--model", "resnet9", "--input", "1,32,32"], "resnet9 does not take input (1, 32, 32)"),
        (["--model", "vgg"], "unknown model 'vgg'"),
    ],
)
def test_bad_arguments_are_one_line_errors(argv, message, capsys):
    assert summary.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


@pytest.mark.parametrize(
    "make",
    [
        lambda: ndl.nn.Conv(0, 4, 3),
        lambda: ndl.nn.Conv(4, 0, 3),
        lambda: ndl.nn.Conv(4, 4, 0),
        lambda: ndl.nn.Conv1d(0, 2, 3),
        lambda: ndl.nn.ConvTranspose2d(0, 2, 3),
        lambda: ndl.nn.Linear(0, 3),
        lambda: ndl.nn.Linear(3, 0),
    ],
)
def test_layers_with_zero_sizes_say_which_argument(make):
    with pytest.raises(ValueError, match="must be"):
        make()
