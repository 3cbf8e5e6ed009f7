"""Print a model's layer table: ``python -m apps.summary --model resnet9``.

Per layer: output shape, parameters, multiply-accumulates, and for convolution and pooling
layers the receptive field and jump (effective stride) in input pixels; totals at the end.
"""

import argparse
import importlib
import os
import sys

if not __package__:  # `import summary` with apps/ on sys.path, as the course's tests do
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if __name__ != "__main__":  # one module object for both names (see apps/__init__.py)
        sys.modules[__name__] = importlib.import_module("apps." + __name__)

import numpy as np

import needle as ndl  # noqa: E402  (apps/__init__ makes the in-tree package importable)
from apps.models import MODELS, build_model


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m apps.summary", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", default="resnet9", help=f"one of: {', '.join(MODELS)}")
    parser.add_argument(
        "--input", default=None, help="input shape C,H,W (default: the model's own, e.g. 3,32,32)"
    )
    parser.add_argument("--batch", type=int, default=1, help="batch size the MACs are counted for")
    args = parser.parse_args(argv)
    if args.model not in MODELS:
        print(
            f"error: unknown model {args.model!r}; choose one of: {', '.join(MODELS)}",
            file=sys.stderr,
        )
        return 2
    try:
        shape = (
            tuple(int(v) for v in args.input.split(","))
            if args.input
            else MODELS[args.model].input_shape
        )
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        print(
            f"error: --input must be three positive integers C,H,W, got {args.input!r}",
            file=sys.stderr,
        )
        return 2
    if args.batch < 1:
        print(f"error: --batch must be >= 1, got {args.batch}", file=sys.stderr)
        return 2
    device = ndl.cpu() if ndl.cpu().enabled() else ndl.cpu_numpy()
    state = np.random.get_state()
    np.random.seed(0)
    try:
        model = build_model(args.model, in_channels=shape[0], image_size=shape[1:], device=device)
        np.random.set_state(state)
        print(f"{args.model} ({type(model).__name__})")
        ndl.nn.summary(model, (args.batch, *shape), device=device)
    except ValueError as exc:  # the model does not take this input: say which layer and why
        np.random.set_state(state)
        print(f"error: {args.model} does not take input {shape}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
