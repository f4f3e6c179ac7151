"""Many CharRNNs (rnnexp.models.torch_rnn) trained as one stacked computation.

A member is one CharRNN: one-hot -> nn.RNN(V, H, num_layers, tanh|relu) -> nn.Linear(H, V), h_0 = 0,
cross-entropy averaged over the T positions. All members' parameters live in one flat buffer with
the member axis LAST, (P, M), and every parameter is a contiguous view of it, e.g. weight_hh_l0 is
(H, H, M). With the member axis last, every matrix-vector product of the model is a broadcast
multiply and a sum over a small axis that vectorises across members, and the optimizer is a few
elementwise ops over (P, M) with per-member hyperparameters of shape (M,).

Gradients come from hand-written backpropagation through time (no autograd graph); they are checked
against torch autograd and torch.optim in tests/test_torch_stack.py.

Shapes: T steps, V vocabulary, H hidden, L layers, M active members.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math

import numpy as np
import torch
from torch import Tensor, nn

from rnnexp.config import model_args
from rnnexp.engine import GroupSpec, MemberSpec
from rnnexp.engine.mixed import MixedOptimizer
from rnnexp.engine.stacked_optim import make_optimizer
from rnnexp.models.torch_rnn import DTYPES


class StackConfigError(ValueError):
    """A group or member the stacked torch engine cannot train."""


# ---- parameter layout -------------------------------------------------------------------------

def parameter_shapes(vocab_size: int, hidden_size: int, num_layers: int, bias: bool) -> dict[str, tuple[int, ...]]:
    """CharRNN.state_dict() keys and shapes, in nn.RNN's and nn.Linear's own parameter order."""
    V, H = vocab_size, hidden_size
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(num_layers):
        shapes[f"rnn.weight_ih_l{layer}"] = (H, V if layer == 0 else H)
        shapes[f"rnn.weight_hh_l{layer}"] = (H, H)
        if bias:
            shapes[f"rnn.bias_ih_l{layer}"] = (H,)
            shapes[f"rnn.bias_hh_l{layer}"] = (H,)
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
    """The half-width of PyTorch's default uniform init for each parameter: nn.RNN draws every
    parameter from U(+-1/sqrt(H)); nn.Linear draws its weight with kaiming_uniform_(a=sqrt(5)) and
    its bias from U(+-1/sqrt(fan_in)), fan_in = H. Computed with torch.nn.init's own expressions so
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

def matvec(W: Tensor, x: Tensor) -> Tensor:
    """W (R, C, M), x (..., C, M) -> (..., R, M): per-member W @ x, as one broadcast product summed
    over C (fastest for the small (H, M) vectors of the recurrence)."""
    return (W * x.unsqueeze(-3)).sum(-2)


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
    """The math of M CharRNNs on one word: loss, spelled and exact gradients into a (P, M) buffer."""

    def __init__(self, inputs: Tensor, targets: Tensor, vocab_size: int, hidden_size: int,
                 num_layers: int, nonlinearity: str, bias: bool, dtype: torch.dtype):
        self.inputs, self.targets = inputs, targets  # (T,) long each
        self.T, self.V, self.H, self.L = len(inputs), vocab_size, hidden_size, num_layers
        self.relu, self.bias = nonlinearity == "relu", bias
        self.shapes = parameter_shapes(vocab_size, hidden_size, num_layers, bias)
        # (T, V, 1) one-hot targets / T: the gradient of the mean cross-entropy is softmax/T - this
        self.target_grad = nn.functional.one_hot(targets, vocab_size).to(dtype).div_(self.T).unsqueeze(-1)
        # (T, V, 1) True where v is not before targets[t]: masks out all but the earlier logits
        self.not_earlier = (torch.arange(vocab_size, device=inputs.device) >= targets.unsqueeze(1)).unsqueeze(-1)

    def activation(self, pre: Tensor, out: Tensor) -> Tensor:
        return torch.clamp_min(pre, 0, out=out) if self.relu else torch.tanh(pre, out=out)

    def activation_grad(self, h: Tensor) -> Tensor:
        """d act / d pre from the activation's output h: 1 - h^2 (tanh) or h > 0 (relu)."""
        return (h > 0).to(h.dtype) if self.relu else 1 - h * h

    def layer_forward(self, p: dict[str, Tensor], layer: int, x: Tensor | None) -> Tensor:
        """One RNN layer over all T steps -> hidden states (T, H, M). x: the layer below's (T, H, M),
        or None for layer 0, whose one-hot input projection is a column gather of weight_ih."""
        W_ih, W_hh = p[f"rnn.weight_ih_l{layer}"], p[f"rnn.weight_hh_l{layer}"]
        if x is None:
            pre = W_ih.transpose(0, 1)[self.inputs]  # (T, H, M): column inputs[t] of each W_ih
        else:
            pre = matvec_steps(W_ih, x)  # (T, H, M)
        if self.bias:
            pre = pre + (p[f"rnn.bias_ih_l{layer}"] + p[f"rnn.bias_hh_l{layer}"])
        hs = torch.empty_like(pre)
        self.activation(pre[0], hs[0])  # h_0 = 0, so the first step has no recurrent term
        for t in range(1, self.T):
            self.activation(pre[t] + matvec(W_hh, hs[t - 1]), hs[t])
        return hs

    def forward(self, p: dict[str, Tensor]) -> tuple[list[Tensor], Tensor]:
        """-> hidden states of each layer [(T, H, M)] and logits (T, V, M)."""
        layers, x = [], None
        for layer in range(self.L):
            x = self.layer_forward(p, layer, x)
            layers.append(x)
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

    def backward(self, p, g, layers: list[Tensor], d_logits: Tensor) -> None:
        """Backpropagation through the output layer, then through time, layer by layer from the top."""
        top = layers[-1]
        outer_sum(d_logits, top, out=g["fc.weight"])  # (V, H, M)
        if self.bias:
            torch.sum(d_logits, 0, out=g["fc.bias"])
        d_out = matvec_t_steps(p["fc.weight"], d_logits)  # (T, H, M): d loss / d outputs of the top layer
        for layer in reversed(range(self.L)):
            d_out = self.layer_backward(p, g, layer, layers, d_out)

    def layer_backward(self, p, g, layer: int, layers: list[Tensor], d_out: Tensor) -> Tensor | None:
        """d_out (T, H, M) -> writes this layer's gradients; returns d loss / d its input (T, H, M)
        for the layer below (None for layer 0, whose input is data)."""
        hs, W_hh = layers[layer], p[f"rnn.weight_hh_l{layer}"]
        act_grad = self.activation_grad(hs)  # (T, H, M)
        d_pre = torch.empty_like(hs)  # d loss / d pre-activation
        torch.mul(d_out[-1], act_grad[-1], out=d_pre[-1])
        for t in range(self.T - 2, -1, -1):
            torch.mul(d_out[t] + matvec_t(W_hh, d_pre[t + 1]), act_grad[t], out=d_pre[t])
        outer_sum(d_pre[1:], hs[:-1], out=g[f"rnn.weight_hh_l{layer}"])
        if self.bias:
            torch.sum(d_pre, 0, out=g[f"rnn.bias_ih_l{layer}"])
            g[f"rnn.bias_hh_l{layer}"].copy_(g[f"rnn.bias_ih_l{layer}"])
        g_ih = g[f"rnn.weight_ih_l{layer}"]
        if layer == 0:  # scatter-add each step's d_pre into the column of its input character
            g_ih.zero_().index_add_(1, self.inputs, d_pre.transpose(0, 1))
            return None
        x = layers[layer - 1]
        outer_sum(d_pre, x, out=g_ih)  # (H, H, M)
        return matvec_t_steps(p[f"rnn.weight_ih_l{layer}"], d_pre)


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
    if group.model != "torch_rnn":
        raise StackConfigError(f"model={group.model!r}: the torch stack engine trains torch_rnn only")
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
    known = set(model_args("torch_rnn"))
    for key, _ in group.model_args:
        if key not in known:
            raise StackConfigError(f"model_args: unknown key {key!r} for torch_rnn (known: {', '.join(sorted(known))})")
    layers = group.model_arg("num_layers", 1)
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 1:
        raise StackConfigError(f"num_layers={layers!r} must be an integer >= 1")
    if group.model_arg("nonlinearity", "tanh") not in ("tanh", "relu"):
        raise StackConfigError(f"nonlinearity={group.model_arg('nonlinearity')!r} must be tanh or relu")


class TorchStackEngine:
    """The Engine (rnnexp.engine) for model torch_rnn: every member's CharRNN trained in one batch."""

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
            group.bias, self.dtype)
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
