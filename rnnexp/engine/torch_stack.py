"""Many CharRNNs (rnnexp.models.torch_rnn) trained as one stacked computation.

A member is one CharRNN: one-hot -> nn.RNN(V, H, num_layers, tanh|relu), nn.GRU or nn.LSTM ->
nn.Linear(H, V), h_0 = 0 (and c_0 = 0), cross-entropy averaged over the T positions. All members'
parameters live in one flat buffer with the member axis LAST, (P, M), and every parameter is a
contiguous view of it, e.g. an nn.RNN's weight_hh_l0 is (H, H, M). With the member axis last,
every matrix-vector product of the model is a broadcast multiply and a sum over a small axis that
vectorises across members, and the optimizer is a few elementwise ops over (P, M) with per-member
hyperparameters of shape (M,).

Gradients come from hand-written backpropagation through time (no autograd graph); they are checked
against torch autograd and torch.optim in tests/test_torch_stack.py.

Shapes: T steps, V vocabulary, H hidden, L layers, M active members, G gates (1 for nn.RNN, 3 for
nn.GRU's r, z, n, 4 for nn.LSTM's i, f, g, o: a gated cell's weights are (G*H, In), PyTorch's layout).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math

import numpy as np
import torch
from torch import Tensor, nn

from rnnexp.config import TORCH_CELLS, model_args
from rnnexp.engine import GroupSpec, MemberSpec
from rnnexp.engine.mixed import MixedOptimizer
from rnnexp.engine.stacked_optim import make_optimizer
from rnnexp.models.torch_rnn import DTYPES, GATES


class StackConfigError(ValueError):
    """A group or member the stacked torch engine cannot train."""


# ---- parameter layout -------------------------------------------------------------------------

def parameter_shapes(vocab_size: int, hidden_size: int, num_layers: int, bias: bool,
                     gates: int = 1) -> dict[str, tuple[int, ...]]:
    """CharRNN.state_dict() keys and shapes, in the recurrent module's and nn.Linear's own
    parameter order; `gates` rows per hidden unit (GATES)."""
    V, H, G = vocab_size, hidden_size, gates
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(num_layers):
        shapes[f"rnn.weight_ih_l{layer}"] = (G * H, V if layer == 0 else H)
        shapes[f"rnn.weight_hh_l{layer}"] = (G * H, H)
        if bias:
            shapes[f"rnn.bias_ih_l{layer}"] = (G * H,)
            shapes[f"rnn.bias_hh_l{layer}"] = (G * H,)
    shapes["fc.weight"] = (V, H)
    if bias:
        shapes["fc.bias"] = (V,)
    return shapes


def flat_views(flat: Tensor, shapes: dict[str, tuple[int, ...]]) -> dict[str, Tensor]:
    """flat (P, M) -> {name: contiguous view (*shape, M)}."""
    views, offset = {}, 0
    for name, shape in shapes.items():
        size = math.prod(shape)
        views[name] = flat[offset:offset + size].view(*shape, flat.shape[1])
        offset += size
    return views


def init_bounds(shapes: dict[str, tuple[int, ...]], hidden_size: int) -> list[float]:
    """The half-width of PyTorch's default uniform init for each parameter: nn.RNN, nn.GRU and
    nn.LSTM draw every parameter from U(+-1/sqrt(H)); nn.Linear draws its weight with
    kaiming_uniform_(a=sqrt(5)) and its bias from U(+-1/sqrt(fan_in)), fan_in = H. Computed with torch.nn.init's own expressions so
    that the bounds are bit-identical."""
    stdv = 1.0 / math.sqrt(hidden_size)
    kaiming = math.sqrt(3.0) * (nn.init.calculate_gain("leaky_relu", math.sqrt(5)) / math.sqrt(hidden_size))
    return [kaiming if name == "fc.weight" else stdv for name in shapes]


def initial_flat(seeds: list[int], shapes: dict[str, tuple[int, ...]], hidden_size: int,
                 dtype: torch.dtype, device) -> Tensor:
    """(P, M) initial parameters: member j gets exactly what rnnexp.models.torch_rnn.build(seed=
    seeds[j]) draws, i.e. one uniform_ per parameter in nn.RNN's then nn.Linear's order from a
    generator seeded like torch.manual_seed, in float32, then cast."""
    sizes = [math.prod(shape) for shape in shapes.values()]
    bounds = init_bounds(shapes, hidden_size)
    rows = torch.empty(len(seeds), sum(sizes), dtype=torch.float32)  # (M, P): one member per row
    for j, seed in enumerate(seeds):
        gen = torch.Generator().manual_seed(seed)
        for chunk, bound in zip(rows[j].split(sizes), bounds):
            chunk.uniform_(-bound, bound, generator=gen)
    return rows.t().to(device=device, dtype=dtype).contiguous()


# ---- forward and backward ---------------------------------------------------------------------

# One step's W @ h as a broadcast product builds an (R, C, M) temporary; beyond this many elements
# (a gated cell's (4H, H, M) at M of about 2000, with H = 5, on a 2-core x86 machine) summing C
# column products in place is faster.
MATVEC_BROADCAST_LIMIT = 3 << 16


def matvec(W: Tensor, x: Tensor) -> Tensor:
    """W (R, C, M), x (C, M) -> (R, M): per-member W @ x, as one broadcast product summed over C
    (fastest for the small (H, M) vectors of the recurrence), column by column at large R*C*M."""
    R, C, M = W.shape
    if R * C * M <= MATVEC_BROADCAST_LIMIT:
        return (W * x.unsqueeze(-3)).sum(-2)
    out = W[:, 0] * x[0]
    for c in range(1, C):
        out.addcmul_(W[:, c], x[c])
    return out


def matvec_t(W: Tensor, y: Tensor) -> Tensor:
    """W (R, C, M), y (R, M) -> (C, M): per-member W^T @ y."""
    return (W * y.unsqueeze(-2)).sum(-3)


# A product over all T steps at once builds a (T, R, C, M) temporary: one op, which is faster while
# that temporary is small (the per-op cost dominates at small M), and slower once it leaves the
# cache; beyond this many elements the products go column by column instead (about M = 1000 at
# T = 8, V = 6, H = 5 on a 2-core x86 machine, where both ways cost the same).
BROADCAST_LIMIT = 1 << 18


def _broadcast(T: int, R: int, C: int, M: int) -> bool:
    return T * R * C * M <= BROADCAST_LIMIT


def matvec_steps(W: Tensor, x: Tensor) -> Tensor:
    """W (R, C, M), x (T, C, M) -> (T, R, M): W @ x_t for every step; column by column at large M,
    so that no (T, R, C, M) temporary is built (it would not fit in cache)."""
    (R, C, M), T = W.shape, x.shape[0]
    if _broadcast(T, R, C, M):
        return (W * x.unsqueeze(1)).sum(2)
    out = W[:, 0] * x[:, 0].unsqueeze(1)
    for c in range(1, C):
        out.addcmul_(W[:, c], x[:, c].unsqueeze(1))
    return out


def matvec_t_steps(W: Tensor, y: Tensor) -> Tensor:
    """W (R, C, M), y (T, R, M) -> (T, C, M): W^T @ y_t for every step (row by row at large M)."""
    (R, C, M), T = W.shape, y.shape[0]
    if _broadcast(T, R, C, M):
        return (W * y.unsqueeze(2)).sum(1)
    out = W[0] * y[:, 0].unsqueeze(1)
    for r in range(1, R):
        out.addcmul_(W[r], y[:, r].unsqueeze(1))
    return out


def outer_sum(a: Tensor, b: Tensor, out: Tensor) -> Tensor:
    """a (T, R, M), b (T, C, M) -> out (R, C, M) = per-member sum_t a_t b_t^T (step by step at
    large M)."""
    (T, R, M), C = a.shape, b.shape[1]
    if _broadcast(T, R, C, M):
        return torch.sum(a.unsqueeze(2) * b.unsqueeze(1), 0, out=out)
    torch.mul(a[0].unsqueeze(1), b[0].unsqueeze(0), out=out)
    for t in range(1, T):
        out.addcmul_(a[t].unsqueeze(1), b[t].unsqueeze(0))
    return out


class StackedCharRNN:
    """The math of M CharRNNs on one word: loss, spelled and exact gradients into a (P, M) buffer.
    `cell` is the recurrent module: rnn (nn.RNN, tanh or relu), gru (nn.GRU) or lstm (nn.LSTM)."""

    def __init__(self, inputs: Tensor, targets: Tensor, vocab_size: int, hidden_size: int,
                 num_layers: int, nonlinearity: str, bias: bool, dtype: torch.dtype,
                 cell: str = "rnn"):
        self.inputs, self.targets = inputs, targets  # (T,) long each
        self.T, self.V, self.H, self.L = len(inputs), vocab_size, hidden_size, num_layers
        self.relu, self.bias = nonlinearity == "relu", bias
        self.shapes = parameter_shapes(vocab_size, hidden_size, num_layers, bias, GATES[cell])
        self.layer_forward = {"rnn": self.rnn_forward, "gru": self.gru_forward,
                              "lstm": self.lstm_forward}[cell]
        self.layer_backward = {"rnn": self.rnn_backward, "gru": self.gru_backward,
                               "lstm": self.lstm_backward}[cell]
        # (T, V, 1) one-hot targets / T: the gradient of the mean cross-entropy is softmax/T - this
        self.target_grad = nn.functional.one_hot(targets, vocab_size).to(dtype).div_(self.T).unsqueeze(-1)
        # (T, V, 1) True where v is not before targets[t]: masks out all but the earlier logits
        self.not_earlier = (torch.arange(vocab_size, device=inputs.device) >= targets.unsqueeze(1)).unsqueeze(-1)

    def activation(self, pre: Tensor, out: Tensor) -> Tensor:
        return torch.clamp_min(pre, 0, out=out) if self.relu else torch.tanh(pre, out=out)

    def activation_grad(self, h: Tensor) -> Tensor:
        """d act / d pre from the activation's output h: 1 - h^2 (tanh) or h > 0 (relu)."""
        return (h > 0).to(h.dtype) if self.relu else 1 - h * h

    def input_projection(self, p: dict[str, Tensor], layer: int, x: Tensor | None,
                         bias: Tensor | None) -> Tensor:
        """W_ih @ x_t + bias for every step -> a new (T, G*H, M). x: the layer below's (T, H, M),
        or None for layer 0, whose one-hot input projection is a column gather of weight_ih."""
        W_ih = p[f"rnn.weight_ih_l{layer}"]
        if x is None:
            gi = W_ih.transpose(0, 1)[self.inputs]  # (T, G*H, M): column inputs[t] of each W_ih
        else:
            gi = matvec_steps(W_ih, x)
        if bias is not None:
            gi += bias
        return gi

    def forward(self, p: dict[str, Tensor]) -> tuple[list[tuple], Tensor]:
        """-> per layer (hidden states (T, H, M), what its backward needs) and logits (T, V, M)."""
        layers, x = [], None
        for layer in range(self.L):
            hs, saved = self.layer_forward(p, layer, x)
            layers.append((hs, saved))
            x = hs
        logits = matvec_steps(p["fc.weight"], x)  # (T, V, M)
        if self.bias:
            logits += p["fc.bias"]
        return layers, logits

    def loss_and_grad(self, p: dict[str, Tensor], g: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Mean cross-entropy (M,) and spelled (M,) bool of the parameters p; writes d loss / d p into
        the gradient views g (same keys and shapes as p)."""
        layers, logits = self.forward(p)
        # log-softmax over V (axis 1) by hand: (T, V, M)
        shifted = logits - logits.amax(1, keepdim=True)
        exp = shifted.exp()
        total = exp.sum(1, keepdim=True)  # (T, 1, M)
        picked = shifted.gather(1, self.targets.view(-1, 1, 1).expand(-1, 1, shifted.shape[-1]))
        loss = (total.log() - picked).mean((0, 1))  # (M,)
        spelled = self.spelled(shifted, picked)
        d_logits = exp.div_(total * self.T).sub_(self.target_grad)  # (T, V, M): (softmax - y) / T
        self.backward(p, g, layers, d_logits)
        return loss, spelled

    def spelled(self, shifted: Tensor, picked: Tensor) -> Tensor:
        """(M,) bool: argmax_v logits[t] == targets[t] for every t, with argmax's first-index tie rule.
        The target is the argmax when its shifted logit is 0 (the max) and every earlier logit is
        below it; comparing is much cheaper than argmax over the middle axis."""
        earlier_max = shifted.masked_fill(self.not_earlier, -math.inf).amax(1)  # (T, M)
        return ((picked.squeeze(1) == 0) & (earlier_max < 0)).all(0)

    def backward(self, p, g, layers: list[tuple], d_logits: Tensor) -> None:
        """Backpropagation through the output layer, then through time, layer by layer from the top."""
        top = layers[-1][0]
        outer_sum(d_logits, top, out=g["fc.weight"])  # (V, H, M)
        if self.bias:
            torch.sum(d_logits, 0, out=g["fc.bias"])
        d_out = matvec_t_steps(p["fc.weight"], d_logits)  # (T, H, M): d loss / d outputs of the top layer
        for layer in reversed(range(self.L)):
            hs, saved = layers[layer]
            x = layers[layer - 1][0] if layer else None
            d_gates, d_hidden = self.layer_backward(p, layer, hs, saved, d_out)
            d_out = self.weight_grads(p, g, layer, x, hs, d_gates, d_hidden)

    def weight_grads(self, p, g, layer: int, x: Tensor | None, hs: Tensor, d_gates: Tensor,
                     d_hidden: Tensor) -> Tensor | None:
        """A layer's weight and bias gradients from d loss / d (W_ih x_t + b_ih) (d_gates) and
        d loss / d (W_hh h_{t-1} + b_hh) (d_hidden), both (T, G*H, M); returns d loss / d the layer's
        input (T, H, M) for the layer below (None for layer 0, whose input is data)."""
        outer_sum(d_hidden[1:], hs[:-1], out=g[f"rnn.weight_hh_l{layer}"])  # h_{-1} = 0
        if self.bias:
            torch.sum(d_gates, 0, out=g[f"rnn.bias_ih_l{layer}"])
            if d_hidden is d_gates:
                g[f"rnn.bias_hh_l{layer}"].copy_(g[f"rnn.bias_ih_l{layer}"])
            else:
                torch.sum(d_hidden, 0, out=g[f"rnn.bias_hh_l{layer}"])
        g_ih = g[f"rnn.weight_ih_l{layer}"]
        if x is None:  # scatter-add each step's gradient into the column of its input character
            g_ih.zero_().index_add_(1, self.inputs, d_gates.transpose(0, 1))
            return None
        outer_sum(d_gates, x, out=g_ih)  # (G*H, H, M)
        return matvec_t_steps(p[f"rnn.weight_ih_l{layer}"], d_gates)

    # ---- nn.RNN: h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
    def rnn_forward(self, p, layer: int, x: Tensor | None) -> tuple[Tensor, None]:
        bias = p[f"rnn.bias_ih_l{layer}"] + p[f"rnn.bias_hh_l{layer}"] if self.bias else None
        pre = self.input_projection(p, layer, x, bias)  # (T, H, M)
        W_hh = p[f"rnn.weight_hh_l{layer}"]
        hs = torch.empty_like(pre)
        self.activation(pre[0], hs[0])  # h_0 = 0, so the first step has no recurrent term
        for t in range(1, self.T):
            self.activation(pre[t] + matvec(W_hh, hs[t - 1]), hs[t])
        return hs, None

    def rnn_backward(self, p, layer: int, hs: Tensor, saved, d_out: Tensor) -> tuple[Tensor, Tensor]:
        W_hh = p[f"rnn.weight_hh_l{layer}"]
        act_grad = self.activation_grad(hs)  # (T, H, M)
        d_pre = torch.empty_like(hs)  # d loss / d pre-activation
        torch.mul(d_out[-1], act_grad[-1], out=d_pre[-1])
        for t in range(self.T - 2, -1, -1):
            torch.mul(d_out[t] + matvec_t(W_hh, d_pre[t + 1]), act_grad[t], out=d_pre[t])
        return d_pre, d_pre

    # ---- nn.GRU: r, z = sigmoid(gi_rz + gh_rz); n = tanh(gi_n + r * gh_n); h = (1 - z) n + z h_prev
    # with gi = W_ih x_t + b_ih and gh = W_hh h_{t-1} + b_hh, each (3H, M) in the order r, z, n
    def gru_forward(self, p, layer: int, x: Tensor | None) -> tuple[Tensor, tuple]:
        H, T = self.H, self.T
        gi = self.input_projection(p, layer, x, p[f"rnn.bias_ih_l{layer}"] if self.bias else None)  # (T, 3H, M)
        W_hh = p[f"rnn.weight_hh_l{layer}"]
        b_hn = None
        if self.bias:  # b_hh's r and z rows add to the input's; its n rows are gated by r
            b_hh = p[f"rnn.bias_hh_l{layer}"]
            gi[:, :2 * H] += b_hh[:2 * H]
            b_hn = b_hh[2 * H:]
        M = gi.shape[-1]
        rz = gi.new_empty(T, 2 * H, M)
        n, gh_n, hs = (gi.new_empty(T, H, M) for _ in range(3))
        for t in range(T):
            if t == 0:  # h_{-1} = 0: gh = b_hh
                torch.sigmoid(gi[0, :2 * H], out=rz[0])
                gh_n[0] = 0 if b_hn is None else b_hn
            else:
                gh = matvec(W_hh, hs[t - 1])  # (3H, M)
                torch.sigmoid(torch.add(gi[t, :2 * H], gh[:2 * H]), out=rz[t])
                if b_hn is None:
                    gh_n[t] = gh[2 * H:]
                else:
                    torch.add(gh[2 * H:], b_hn, out=gh_n[t])
            torch.tanh(torch.addcmul(gi[t, 2 * H:], rz[t, :H], gh_n[t]), out=n[t])
            if t == 0:
                torch.addcmul(n[0], rz[0, H:], n[0], value=-1, out=hs[0])  # (1 - z) n
            else:
                torch.addcmul(n[t], rz[t, H:], hs[t - 1] - n[t], out=hs[t])  # n + z (h_prev - n)
        return hs, (rz, n, gh_n)

    def gru_backward(self, p, layer: int, hs: Tensor, saved: tuple, d_out: Tensor) -> tuple[Tensor, Tensor]:
        H, T = self.H, self.T
        rz, n, gh_n = saved
        r, z = rz[:, :H], rz[:, H:]
        h_prev = torch.zeros_like(hs)
        h_prev[1:] = hs[:-1]
        # the local derivatives of every step at once, (T, H, M) each
        dn_pre = (1 - z) * (1 - n * n)  # d h / d (n's pre-activation)
        dz_pre = (h_prev - n) * z * (1 - z)  # d h / d (z's pre-activation)
        dr_pre = gh_n * r * (1 - r)  # d (n's pre-activation) / d (r's pre-activation)
        W_hh = p[f"rnn.weight_hh_l{layer}"]
        d_gi = rz.new_empty(T, 3 * H, hs.shape[-1])  # d loss / d gi
        d_gh = torch.empty_like(d_gi)  # d loss / d gh
        carry = None  # d loss / d h_t through h_{t+1}
        for t in range(T - 1, -1, -1):
            dh = d_out[t] if carry is None else d_out[t] + carry
            torch.mul(dh, dz_pre[t], out=d_gh[t, H:2 * H])
            torch.mul(dh, dn_pre[t], out=d_gi[t, 2 * H:])
            torch.mul(d_gi[t, 2 * H:], dr_pre[t], out=d_gh[t, :H])
            torch.mul(d_gi[t, 2 * H:], r[t], out=d_gh[t, 2 * H:])
            if t:
                carry = matvec_t(W_hh, d_gh[t]).addcmul_(dh, z[t])
        d_gi[:, :2 * H] = d_gh[:, :2 * H]  # r and z: gi and gh enter the same sum
        return d_gi, d_gh

    # ---- nn.LSTM: i, f, o = sigmoid(.), g = tanh(.) of gi + gh (4H rows: i, f, g, o);
    # c = f c_prev + i g; h = o tanh(c)
    def lstm_forward(self, p, layer: int, x: Tensor | None) -> tuple[Tensor, tuple]:
        H, T = self.H, self.T
        bias = p[f"rnn.bias_ih_l{layer}"] + p[f"rnn.bias_hh_l{layer}"] if self.bias else None
        gates = self.input_projection(p, layer, x, bias)  # (T, 4H, M): pre-activations, then gates
        W_hh = p[f"rnn.weight_hh_l{layer}"]
        M = gates.shape[-1]
        cs, tc, hs = (gates.new_empty(T, H, M) for _ in range(3))
        for t in range(T):
            a = gates[t]
            if t:
                a += matvec(W_hh, hs[t - 1])
            torch.sigmoid(a[:2 * H], out=a[:2 * H])
            torch.tanh(a[2 * H:3 * H], out=a[2 * H:3 * H])
            torch.sigmoid(a[3 * H:], out=a[3 * H:])
            if t == 0:  # c_{-1} = 0
                torch.mul(a[:H], a[2 * H:3 * H], out=cs[0])
            else:
                torch.addcmul(a[H:2 * H] * cs[t - 1], a[:H], a[2 * H:3 * H], out=cs[t])
            torch.tanh(cs[t], out=tc[t])
            torch.mul(a[3 * H:], tc[t], out=hs[t])
        return hs, (gates, cs, tc)

    def lstm_backward(self, p, layer: int, hs: Tensor, saved: tuple, d_out: Tensor) -> tuple[Tensor, Tensor]:
        H, T = self.H, self.T
        gates, cs, tc = saved
        i, f, g, o = (gates[:, k * H:(k + 1) * H] for k in range(4))
        M = hs.shape[-1]
        c_prev = torch.zeros_like(cs)
        c_prev[1:] = cs[:-1]
        # the local derivatives of every step at once
        dc_dh = o * (1 - tc * tc)  # (T, H, M): d h / d c
        local = gates.new_empty(T, 3, H, M)  # d c / d the pre-activations of i, f, g
        torch.mul(g, i * (1 - i), out=local[:, 0])
        torch.mul(c_prev, f * (1 - f), out=local[:, 1])
        torch.mul(i, 1 - g * g, out=local[:, 2])
        do_pre = tc * o * (1 - o)  # d h / d o's pre-activation
        W_hh = p[f"rnn.weight_hh_l{layer}"]
        d_pre = gates.new_empty(T, 4 * H, M)
        carry_h = carry_c = None
        for t in range(T - 1, -1, -1):
            dh = d_out[t] if carry_h is None else d_out[t] + carry_h
            dc = dh * dc_dh[t] if carry_c is None else torch.addcmul(carry_c, dh, dc_dh[t])
            torch.mul(dc, local[t], out=d_pre[t, :3 * H].view(3, H, M))
            torch.mul(dh, do_pre[t], out=d_pre[t, 3 * H:])
            if t:
                carry_c = dc * f[t]
                carry_h = matvec_t(W_hh, d_pre[t])
        return d_pre, d_pre


# ---- the engine -------------------------------------------------------------------------------

def _take(x: Tensor, sel) -> Tensor:
    """The members `sel` of a (P, M) buffer: a view for a slice, a copy for an index array."""
    return x[:, sel] if isinstance(sel, slice) else x[:, torch.as_tensor(sel, device=x.device)]


def _put(x: Tensor, sel, part: Tensor) -> None:
    x[:, torch.as_tensor(sel, device=x.device)] = part


@functools.cache
def keep_freed_memory_for_reuse() -> bool:
    """PyTorch's CPU tensors come from plain malloc, and glibc returns every freed block above
    128 KiB to the OS, so each of a step's ~100 temporaries ((T, V, M), (P, M), ...) is page-faulted
    in again on the next step: about 40% of a step at M = 1024. Raising glibc's mmap and trim
    thresholds (once per process) lets freed blocks be reused instead. No-op off glibc."""
    libc_name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(libc_name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 512 << 20))


def _check_group(group: GroupSpec, members: list[MemberSpec]) -> None:
    if group.model not in TORCH_CELLS:
        raise StackConfigError(f"model={group.model!r}: the torch stack engine trains "
                               f"{', '.join(TORCH_CELLS)} only")
    if group.dtype not in DTYPES:
        raise StackConfigError(f"dtype={group.dtype!r} must be one of {', '.join(DTYPES)}")
    if not members:
        raise StackConfigError("members: at least one member is needed")
    if group.hidden_size < 1:
        raise StackConfigError(f"hidden_size={group.hidden_size!r} must be >= 1")
    if len(group.inputs) != len(group.targets) or len(group.inputs) < 1:
        raise StackConfigError(f"inputs/targets must be equally long and non-empty, got {len(group.inputs)} "
                               f"and {len(group.targets)}")
    bad = [i for i in (*group.inputs, *group.targets) if not 0 <= i < group.vocab_size]
    if bad:
        raise StackConfigError(f"character index {bad[0]} is outside vocab_size={group.vocab_size}")
    known = set(model_args(group.model))
    for key, _ in group.model_args:
        if key not in known:
            raise StackConfigError(f"model_args: unknown key {key!r} for {group.model} "
                                   f"(known: {', '.join(sorted(known))})")
    layers = group.model_arg("num_layers", 1)
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
        raise StackConfigError(f"num_layers={layers!r} must be an integer >= 1")
    if group.model_arg("nonlinearity", "tanh") not in ("tanh", "relu"):
        raise StackConfigError(f"nonlinearity={group.model_arg('nonlinearity')!r} must be tanh or relu")


class TorchStackEngine:
    """The Engine (rnnexp.engine) for models torch_rnn, torch_gru and torch_lstm: every member's
    CharRNN trained in one batch."""

    def __init__(self, group: GroupSpec, members: list[MemberSpec]):
        _check_group(group, members)
        if group.device == "cpu":
            keep_freed_memory_for_reuse()
        self.group = group
        self.dtype, self.device = DTYPES[group.dtype], torch.device(group.device)
        long = dict(dtype=torch.long, device=self.device)
        self.model = StackedCharRNN(
            torch.tensor(group.inputs, **long), torch.tensor(group.targets, **long), group.vocab_size,
            group.hidden_size, group.model_arg("num_layers", 1), group.model_arg("nonlinearity", "tanh"),
            group.bias, self.dtype, TORCH_CELLS[group.model])
        self.shapes = self.model.shapes
        self._set_params(initial_flat([m.seed for m in members], self.shapes, group.hidden_size,
                                      self.dtype, self.device))
        self.optimizer = MixedOptimizer(members, self._make_optimizer, take=_take, put=_put,
                                        keep=self._keep_members)

    def _make_optimizer(self, name: str, hparams: list, flags: dict):
        return make_optimizer(name, hparams, flags, dtype=self.dtype, device=self.device)

    def _keep_members(self, optimizer, mask: np.ndarray) -> None:
        optimizer.keep(torch.as_tensor(np.flatnonzero(mask), dtype=torch.long, device=self.device))

    def _set_params(self, flat: Tensor) -> None:
        self.flat = flat  # (P, M)
        self.grad = torch.empty_like(flat)
        self.params, self.grads = flat_views(flat, self.shapes), flat_views(self.grad, self.shapes)

    @property
    def num_members(self) -> int:
        return self.flat.shape[1]

    @torch.no_grad()
    def step(self) -> tuple[np.ndarray, np.ndarray]:
        loss, spelled = self.model.loss_and_grad(self.params, self.grads)
        self.optimizer.step(self.flat, self.grad)
        return loss.to("cpu", torch.float64).numpy(), spelled.cpu().numpy()

    def keep(self, mask: np.ndarray) -> None:
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (self.num_members,):
            raise StackConfigError(f"keep: mask must be a bool array of shape ({self.num_members},), "
                                   f"got {mask.dtype} {mask.shape}")
        index = torch.as_tensor(np.flatnonzero(mask), dtype=torch.long, device=self.device)
        self._set_params(self.flat[:, index].contiguous())
        self.optimizer.keep(mask)

    def export(self, i: int) -> dict[str, np.ndarray]:
        if not -self.num_members <= i < self.num_members:
            raise IndexError(f"export: member {i} out of range for {self.num_members} active members")
        return {name: view[..., i].to("cpu", torch.float64).numpy().copy()
                for name, view in self.params.items()}
