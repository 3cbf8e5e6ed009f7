"""Sequence layers against PyTorch with transplanted weights (course layout = PyTorch's
weights transposed): forward values, final states, and the gradient of the input, the initial
states and every parameter of every layer; plus the course's attribute conventions and the
argument checks."""

import numpy as np
import pytest

import needle as ndl
from needle import nn

torch = pytest.importorskip("torch")

MODELS = {
    "rnn_tanh": (nn.RNN, torch.nn.RNN, dict(nonlinearity="tanh"), "rnn_cells"),
    "rnn_relu": (nn.RNN, torch.nn.RNN, dict(nonlinearity="relu"), "rnn_cells"),
    "lstm": (nn.LSTM, torch.nn.LSTM, {}, "lstm_cells"),
    "gru": (nn.GRU, torch.nn.GRU, {}, "gru_cells"),
}
CELLS = {
    "rnn_tanh": (nn.RNNCell, torch.nn.RNNCell, dict(nonlinearity="tanh")),
    "rnn_relu": (nn.RNNCell, torch.nn.RNNCell, dict(nonlinearity="relu")),
    "lstm": (nn.LSTMCell, torch.nn.LSTMCell, {}),
    "gru": (nn.GRUCell, torch.nn.GRUCell, {}),
}
I, H, B = 5, 4, 3
TOL = dict(rtol=1e-5, atol=1e-5)


def _tensor(a, device):
    return ndl.Tensor(a.astype(np.float32), device=device, dtype="float32")


def _transplant(cell, weights, device):
    """Copy PyTorch's (G, in) weights into a needle cell as plain Tensors (course layout)."""
    w_ih, w_hh, *biases = [w.detach().numpy() for w in weights]
    cell.W_ih, cell.W_hh = _tensor(w_ih.T.copy(), device), _tensor(w_hh.T.copy(), device)
    if biases:
        cell.bias_ih, cell.bias_hh = (_tensor(b, device) for b in biases)
    return [cell.W_ih, cell.W_hh, *([cell.bias_ih, cell.bias_hh] if biases else [])]


def _close(ours, theirs, what):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else theirs
    np.testing.assert_allclose(ours.numpy(), theirs, err_msg=what, **TOL)


@pytest.mark.parametrize("steps", [1, 4])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "given_state"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no_bias"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("kind", list(MODELS))
def test_layer_matches_torch(kind, layers, bias, with_state, steps, device):
    ours_cls, torch_cls, kwargs, cells_attr = MODELS[kind]
    torch.manual_seed(0)
    ref = torch_cls(I, H, num_layers=layers, bias=bias, **kwargs).double()
    model = ours_cls(I, H, num_layers=layers, bias=bias, device=device, **kwargs)
    params = []
    for k, cell in enumerate(getattr(model, cells_attr)):
        names = [f"weight_ih_l{k}", f"weight_hh_l{k}"] + (
            [f"bias_ih_l{k}", f"bias_hh_l{k}"] if bias else [])  # fmt: skip
        params.append(_transplant(cell, [getattr(ref, n) for n in names], device))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((steps, B, I))
    states = [rng.standard_normal((layers, B, H)) for _ in range(2 if kind == "lstm" else 1)]
    tx = torch.tensor(x, requires_grad=True)
    ts = [torch.tensor(s, requires_grad=True) for s in states]
    X = _tensor(x, device)
    S = [_tensor(s, device) for s in states]
    if kind == "lstm":
        out, (h_n, c_n) = model(X, tuple(S) if with_state else None)
        t_out, (t_h, t_c) = ref(tx, tuple(ts) if with_state else None)
        finals, t_finals = [h_n, c_n], [t_h, t_c]
    else:
        out, h_n = model(X, S[0] if with_state else None)
        t_out, t_h = ref(tx, ts[0] if with_state else None)
        finals, t_finals = [h_n], [t_h]
    _close(out, t_out, "output")
    for k, (f, tf) in enumerate(zip(finals, t_finals)):
        _close(f, tf, f"final state {k}")
    # A loss that reaches every output, weighted so that each gets its own gradient.
    w_out = rng.standard_normal(out.shape)
    w_fin = [rng.standard_normal(f.shape) for f in finals]
    loss = (out * _tensor(w_out, device)).sum()
    t_loss = (t_out * torch.tensor(w_out)).sum()
    for f, tf, w in zip(finals, t_finals, w_fin):
        loss = loss + (f * _tensor(w, device)).sum()
        t_loss = t_loss + (tf * torch.tensor(w)).sum()
    loss.backward()
    t_loss.backward()
    _close(X.grad, tx.grad, "input gradient")
    if with_state:
        for k, (s, ts_) in enumerate(zip(S, ts)):
            _close(s.grad, ts_.grad, f"initial state {k} gradient")
    for k, layer_params in enumerate(params):
        names = ["W_ih", "W_hh", "bias_ih", "bias_hh"]
        torch_names = [f"weight_ih_l{k}", f"weight_hh_l{k}", f"bias_ih_l{k}", f"bias_hh_l{k}"]
        for name, tname, p in zip(names, torch_names, layer_params):
            want = getattr(ref, tname).grad.numpy()
            _close(p.grad, want.T if want.ndim == 2 else want, f"layer {k} {name} gradient")


@pytest.mark.parametrize("with_state", [False, True], ids=["zero_state", "given_state"])
@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_matches_torch(kind, with_state, device):
    ours_cls, torch_cls, kwargs = CELLS[kind]
    torch.manual_seed(0)
    ref = torch_cls(I, H, **kwargs).double()
    cell = ours_cls(I, H, device=device, **kwargs)
    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    params = _transplant(cell, [getattr(ref, n) for n in names], device)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((B, I))
    states = [rng.standard_normal((B, H)) for _ in range(2 if kind == "lstm" else 1)]
    tx, ts = torch.tensor(x), [torch.tensor(s) for s in states]
    X, S = _tensor(x, device), [_tensor(s, device) for s in states]
    if kind == "lstm":
        outs = cell(X, tuple(S) if with_state else None)
        t_outs = ref(tx, tuple(ts) if with_state else None)
    else:
        outs = [cell(X, S[0] if with_state else None)]
        t_outs = [ref(tx, ts[0] if with_state else None)]
    loss, t_loss = None, None
    for k, (o, to) in enumerate(zip(outs, t_outs)):
        _close(o, to, f"output {k}")
        loss = o.sum() * (k + 1) if loss is None else loss + o.sum() * (k + 1)
        t_loss = to.sum() * (k + 1) if t_loss is None else t_loss + to.sum() * (k + 1)
    loss.backward()
    t_loss.backward()
    for name, p in zip(names, params):
        want = getattr(ref, name).grad.numpy()
        _close(p.grad, want.T if want.ndim == 2 else want, f"{name} gradient")


def test_cell_parameters_course_layout(device):
    np.random.seed(0)
    cell = nn.LSTMCell(6, 3, device=device)
    assert [p.shape for p in cell.parameters()] == [(6, 12), (3, 12), (12,), (12,)]
    bound = 1 / np.sqrt(3)
    assert all(np.abs(p.numpy()).max() <= bound for p in cell.parameters())
    assert len(nn.GRUCell(6, 3, bias=False, device=device).parameters()) == 2
    assert [p.shape for p in nn.RNN(6, 3, num_layers=2, device=device).parameters()] == [
        (6, 3), (3, 3), (3,), (3,), (3, 3), (3, 3), (3,), (3,)]  # fmt: skip


def test_embedding_matches_torch(device):
    torch.manual_seed(0)
    ref = torch.nn.Embedding(7, 4).double()
    emb = nn.Embedding(7, 4, device=device)
    emb.weight = nn.Parameter(_tensor(ref.weight.detach().numpy(), device))
    idx = np.array([[0, 3, 3], [6, 0, 3]])  # repeated rows: their gradients accumulate
    out = emb(ndl.Tensor(idx, device=device, dtype="float32", requires_grad=False))
    t_out = ref(torch.tensor(idx))
    _close(out, t_out, "embedding forward")
    w = np.random.default_rng(3).standard_normal(out.shape)
    (out * _tensor(w, device)).sum().backward()
    (t_out * torch.tensor(w)).sum().backward()
    _close(emb.weight.grad, ref.weight.grad, "embedding gradient")


def test_embedding_rejects_out_of_range(device):
    emb = nn.Embedding(5, 2, device=device)
    bad = ndl.Tensor(np.array([[1, 5]]), device=device, requires_grad=False)
    with pytest.raises(IndexError):
        emb(bad).numpy()
    with pytest.raises(ValueError, match="num_embeddings"):
        nn.Embedding(0, 2)


@pytest.mark.parametrize("make, message", [
    (lambda: nn.RNNCell(3, 4, nonlinearity="sigmoid"), "nonlinearity"),
    (lambda: nn.LSTM(3, 0), "hidden_size"),
    (lambda: nn.GRU(3, 4, num_layers=0), "num_layers"),
])  # fmt: skip
def test_bad_construction(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_shapes(device):
    model = nn.LSTM(3, 4, num_layers=2, device=device)
    x = ndl.Tensor(np.zeros((5, 2, 3)), device=device)
    with pytest.raises(ValueError, match="input_size=3"):
        model(ndl.Tensor(np.zeros((5, 2, 4)), device=device))
    with pytest.raises(ValueError, match="h0"):
        model(x, (ndl.Tensor(np.zeros((1, 2, 4)), device=device),) * 2)
    with pytest.raises(ValueError, match="input_size=3"):
        nn.GRUCell(3, 4, device=device)(ndl.Tensor(np.zeros((2, 5)), device=device))
