"""layerdiff.torch — probes of a PyTorch model through forward hooks: capture(model, path, ...)
maps module names to layerdiff tags (a built-in map for transformers' Qwen3), reduces device
tensors to statistics on their device and copies payloads only when wanted. Not the writer
(layerdiff.probes) nor the transformers runner (layerdiff.hf)."""

import collections.abc
import contextlib
import importlib
import re
import warnings

import numpy as np
import torch

from . import probes

# Module name (a regex; the first group, when present, is the layer) -> (tag, what): "out" takes
# the module's output, "in" its first input. Shapes are made [T, ...] by _as_probe_shape.
QWEN3_TAG_MAP = (
    (r"model\.embed_tokens", "embed", "out"),
    (r"model\.layers\.(\d+)\.input_layernorm", "attn_norm", "out"),
    (r"model\.layers\.(\d+)\.self_attn\.q_proj", "q_proj", "out"),
    (r"model\.layers\.(\d+)\.self_attn\.k_proj", "k_proj", "out"),
    (r"model\.layers\.(\d+)\.self_attn\.v_proj", "v_proj", "out"),
    (r"model\.layers\.(\d+)\.self_attn\.q_norm", "q_norm", "out"),
    (r"model\.layers\.(\d+)\.self_attn\.k_norm", "k_norm", "out"),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj", "attn_out", "in"),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj", "o_proj", "out"),
    (r"model\.layers\.(\d+)\.post_attention_layernorm", "attn_residual", "in"),
    (r"model\.layers\.(\d+)\.post_attention_layernorm", "mlp_norm", "out"),
    (r"model\.layers\.(\d+)\.mlp\.gate_proj", "gate_proj", "out"),
    (r"model\.layers\.(\d+)\.mlp\.up_proj", "up_proj", "out"),
    (r"model\.layers\.(\d+)\.mlp\.down_proj", "mlp_act", "in"),
    (r"model\.layers\.(\d+)\.mlp\.down_proj", "down_proj", "out"),
    (r"model\.layers\.(\d+)", "layer_out", "out"),
    (r"model\.norm", "final_norm", "out"),
    (r"lm_head", "logits", "out"),
)
# q_rope and k_rope are no module's output: the rotary function of these modules is wrapped, and
# its outputs are the probes of the attention module running at the time.
QWEN3_ROPE = ("transformers.models.qwen3.modeling_qwen3", "apply_rotary_pos_emb",
              r"model\.layers\.(\d+)\.self_attn")

_TORCH_DTYPE = {torch.float32: "f32", torch.bfloat16: "bf16", torch.float16: "f16"}


def device_stats(t):
    """layerdiff's statistics and head of a tensor, computed on its device in float64 (two
    transfers of a few numbers): min, max, mean, std (population), l2, absmax over the finite
    elements, NaN and Inf counts; head: the first 16 values, widened exactly."""
    x = t.detach().reshape(-1).to(torch.float64)
    fin = torch.isfinite(x)
    nfin, nan = (int(v) for v in torch.stack([fin.sum(), torch.isnan(x).sum()]).tolist())
    out = {"nan": nan, "inf": x.numel() - nfin - nan}
    f = x if nfin == x.numel() else x[fin]
    if nfin == 0:
        out.update({k: float("nan") for k in ("min", "max", "mean", "std", "l2", "absmax")})
        return out, x[:probes.HEAD_COUNT].tolist()
    mean = f.mean()
    v = torch.cat([torch.stack([f.min(), f.max(), mean, (f - mean).square().mean().sqrt(),
                                f.square().sum().sqrt()]), x[:probes.HEAD_COUNT]]).tolist()
    out.update(min=v[0], max=v[1], mean=v[2], std=v[3], l2=v[4], absmax=max(abs(v[0]),
                                                                          abs(v[1])))
    return out, v[5:]


def host_array(t):
    """A tensor as the numpy array probes.Sink.emit takes, and its dtype name (bf16 as uint16
    bit patterns: numpy has no bf16)."""
    t = t.detach().contiguous()
    dtype = _TORCH_DTYPE.get(t.dtype)
    if dtype is None:
        t, dtype = t.float(), "f32"
    if dtype == "bf16":
        return t.view(torch.int16).cpu().numpy().view(np.uint16), dtype
    return t.cpu().numpy(), dtype


class CaptureWarning(UserWarning):
    """A probe capture() could not take (warned once per key; the model runs on)."""


def _as_probe_shape(t, tag, n_heads):
    """[1, T, ...] (batch of one) or a rotary output [1, heads, T, D] as layerdiff's [T, ...]:
    heads split out for the head-shaped tags when the width divides (T = 0 included); a 0-d
    tensor (a scalar) as [1]."""
    if t.dim() == 0:
        return t.reshape(1)
    if t.dim() >= 2 and t.shape[0] == 1:
        t = t[0]
    if tag in ("q_rope", "k_rope") and t.dim() >= 2:
        t = t.transpose(0, 1)  # [heads, T, D] -> [T, heads, D]
    heads = n_heads.get(tag)
    if heads and t.dim() == 2 and t.shape[-1] % heads == 0:
        t = t.reshape(t.shape[0], heads, t.shape[-1] // heads)
    return t


def _first_tensor(v):
    """The tensor a probe takes of a module's output or inputs: the value itself, or the first
    tensor of a tuple or list, or of a dict's values (transformers' ModelOutput is one); None
    when there is none."""
    if isinstance(v, torch.Tensor):
        return v
    if isinstance(v, collections.abc.Mapping):
        v = v.values()
    if isinstance(v, (tuple, list, collections.abc.ValuesView)):
        return next((x for x in v if isinstance(x, torch.Tensor)), None)
    return None


def step_positions(args, kwargs):
    """How many positions one forward of the root module covers: the length of input_ids (the
    last dimension of an integer tensor), else the sequence length of a float input (dimension
    -2 of [B, T, H], such as inputs_embeds); the input is the input_ids or inputs_embeds keyword,
    else the first tensor argument. 0 when there is no tensor."""
    x = kwargs.get("input_ids")
    if not isinstance(x, torch.Tensor):
        x = kwargs.get("inputs_embeds")
    if not isinstance(x, torch.Tensor):
        x = _first_tensor(args)
    if not isinstance(x, torch.Tensor):
        x = _first_tensor(kwargs)
    if not isinstance(x, torch.Tensor):
        return 0
    if x.dim() == 0:
        return 1
    if x.is_floating_point() or x.is_complex():
        return int(x.shape[-2]) if x.dim() >= 2 else 1
    return int(x.shape[-1])


class Capture:
    """What capture() yields: the sink (None when probing is off), the step count, pos0 (the
    first position of the next forward: set it to override), the argmax token of every step
    (end_tokens) and the tokens fed to decode steps (decoded, recorded by the caller); fault, the
    first probe that failed unexpectedly (None: none did)."""

    def __init__(self, sink, n_heads):
        self.sink, self.n_heads = sink, n_heads
        self.step, self.pos0, self.steps_started = 0, 0, 0
        self.end_tokens, self.decoded = [], []
        self.fault = None
        self._layer_buf = {}  # layer -> [(sort key, key, emit thunk)], flushed in tag order
        self._taken, self._warned = set(), set()

    def _skip(self, key, why):
        """A probe not taken: one warning per key; the model runs on."""
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"layerdiff capture: {self.sink.name}: probe {key} {why}",
                          CaptureWarning, stacklevel=3)

    def _failed(self, key, e):
        """A probe that failed unexpectedly (a bug of the map, a sink that cannot write): warned
        once per key; the first one ends the stream with an error end record."""
        what = f"{type(e).__name__}: {e}"[:500]
        if self.fault is None:
            self.fault = f"probe {key} could not be taken: {what}"
        self._skip(key, f"could not be taken ({what}); the stream will end with an error")

    def record(self, layer, tag, t):
        """Takes one probe of tensor t (or of the first tensor in it). Never raises for a probe
        that cannot be taken: it warns (CaptureWarning, once per key) and the forward goes on."""
        key = probes.key_name(self.step, layer, tag)
        try:
            self._record(key, layer, tag, t)
        except Exception as e:  # a probe that cannot be taken never aborts the user's forward
            self._failed(key, e)

    def _record(self, key, layer, tag, t):
        step, sink = self.step, self.sink
        if sink._failed is not None or not sink.wants(step, layer, tag):
            return
        sink._check_key(step, layer, tag)  # a per-layer tag without a layer...: a fault
        t = _first_tensor(t)
        if t is None:
            self._skip(key, "is not written: the module gave no tensor")
            return
        if key in self._taken:
            self._skip(key, "was taken again in the same step (a module run more than once per "
                       "forward): the first one is kept")
            return
        self._taken.add(key)
        t = _as_probe_shape(t, tag, self.n_heads)
        if t.dim() > probes.MAX_NDIM:
            self._skip(key, f"is not written: shape {list(t.shape)} has {t.dim()} dimensions, "
                       f"more than layerdiff's {probes.MAX_NDIM}")
            return
        pos0 = self.pos0
        if sink.wants_data:
            a, dtype = host_array(t)

            def put():
                self.sink.emit(step, layer, tag, a, pos0=pos0, dtype=dtype)
        else:
            dtype = _TORCH_DTYPE.get(t.dtype, "f32")
            stats, head = device_stats(t)
            shape = tuple(t.shape)

            def put():
                self.sink.emit_precomputed(step, layer, tag, shape=shape, dtype=dtype,
                                           stats=stats, head=head, pos0=pos0)
        if tag == "embed":
            put()  # the first probe of a step: nothing can come before it
            return
        self._layer_buf.setdefault(layer, []).append((probes.tag_sort_key(step, layer, tag), key,
                                                      put))
        if tag == "layer_out":
            self.flush(layer)

    def flush(self, layer=None):
        """Writes the buffered probes of one layer, or all (the end of a step, the end of the
        capture), in layerdiff's tag order: hooks fire in the model's order (q_proj, q_norm,
        k_proj, ...), which differs. A probe that fails to write is a fault, not an exception."""
        if layer is None:
            todo = [kp for lay in list(self._layer_buf) for kp in self._layer_buf.pop(lay)]
        else:
            todo = self._layer_buf.pop(layer, [])
        for _, key, put in sorted(todo, key=lambda kp: kp[0]):
            try:
                put()
            except Exception as e:
                self._failed(key, e)


def _check_map(model, tag_map, rope):
    """The tag map and rope compiled, or ProbeError (usage) saying what is wrong with them, before
    any file is opened: rows of (regex, tag, "in"|"out"), table tags with a layer group exactly
    when per-layer, a map that matches at least one of the model's modules, a rope function that
    can be imported."""
    def bad(msg):
        return probes.ProbeError(f"capture: {msg}", "usage")
    compiled = []
    for row in tag_map:
        if not (isinstance(row, (tuple, list)) and len(row) == 3 and
                all(isinstance(v, str) for v in row)):
            raise bad(f"tag map row {row!r} is not (regex, tag, 'in' | 'out')"[:300])
        rx, tag, where = row
        try:
            crx = re.compile(rx + r"\Z")
        except re.error as e:
            raise bad(f"tag map regex {rx!r}: {e}") from e
        if where not in ("in", "out"):
            raise bad(f"tag map row for {tag}: {where!r} is not 'in' or 'out'")
        if not probes._TAG_RE.match(tag):
            raise bad(f"tag map: {tag!r} is not a tag name (1 to 128 characters of A-Z a-z 0-9 "
                      "_ . : / + -)")
        if tag in probes.PER_LAYER and probes.PER_LAYER[tag] != (crx.groups > 0):
            per = probes.PER_LAYER[tag]
            raise bad(f"tag map: {tag} is a {'per-layer' if per else 'model-level'} tag, so its "
                      f"regex {rx!r} must {'' if per else 'not '}have a group (the layer)")
        compiled.append((crx, tag, where))
    names = [name for name, _ in model.named_modules()]
    if compiled and not any(crx.match(n) for n in names for crx, _, _ in compiled):
        kind = type(getattr(model, "config", None)).__name__
        raise bad(f"the tag map matches none of the model's {len(names)} modules (a "
                  f"{type(model).__name__}, config {kind}; the default map is transformers' "
                  "Qwen3's: give tag_map= for another model)")
    if not rope:
        return compiled, None, None
    try:
        mod = importlib.import_module(rope[0])
        fn = getattr(mod, rope[1])
        attn_rx = re.compile(rope[2] + r"\Z")
    except (ImportError, AttributeError, re.error, IndexError, TypeError) as e:
        raise bad(f"rope {rope!r}: {e} (rope=None turns q_rope/k_rope off)"[:400]) from e
    return compiled, (mod, fn), attn_rx


@contextlib.contextmanager
def capture(model, path=None, *, tokens, decode_steps, tag_map=QWEN3_TAG_MAP, rope=QWEN3_ROPE,
            n_heads=None, implementation="pytorch", backend=None, model_info=None, **sink_args):
    """Registers hooks on model for tag_map ((module-name regex, tag, "in"|"out"), the regex's
    group the layer) and, when rope names (module, function, attention-module regex), wraps that
    function for q_rope/k_rope; writes probes to path (None: $LAYERDIFF_PROBES and the
    LAYERDIFF_PROBE_* variables; unset: no probing, and the Capture yielded has no sink and no
    hooks). A forward of the root module is one step: the first the prefill, each later one a
    decode step; its pos0 is cap.pos0, which then advances by the forward's positions
    (step_positions). n_heads: {tag: heads} to split [T, H*D] outputs (the Qwen3 map derives it
    from model.config). The end record is written on exit, after the probes held: set
    cap.end_tokens and cap.decoded (the forced decode tokens) before it. An exception in the
    block, or a probe that failed (cap.fault), makes it an error end record."""
    compiled, rope_fn, attn_rx = _check_map(model, tag_map, rope)
    cfg = getattr(model, "config", None)
    if n_heads is None and cfg is not None and hasattr(cfg, "num_attention_heads"):
        hq = cfg.num_attention_heads
        hkv = getattr(cfg, "num_key_value_heads", None) or hq
        n_heads = {"q_proj": hq, "q_norm": hq, "attn_out": hq, "k_proj": hkv, "k_norm": hkv,
                   "v_proj": hkv}
    run = dict(implementation=implementation, backend=backend or {}, model=model_info or {},
               tokens=tokens, decode_steps=decode_steps)
    if path is None:
        sink = probes.open_env(**sink_args, **run)
    else:
        sink = probes.Sink(path, **{**probes.config_from_env(), **sink_args, **run})
    if sink is None:  # probing off: an inert Capture, so that cap.end_tokens = ... still works
        yield Capture(None, n_heads or {})
        return
    cap = Capture(sink, n_heads or {})
    handles, restore = [], None

    def hook_for(layer, tag, where):
        if where == "in":  # the first tensor argument, positional or keyword
            def take_input(mod, args, kwargs):
                t = _first_tensor(args)
                cap.record(layer, tag, t if t is not None else _first_tensor(kwargs))
            return take_input
        return lambda mod, args, out: cap.record(layer, tag, out)

    current_attn = [None]
    for name, mod in model.named_modules():
        for rx, tag, where in compiled:
            m = rx.match(name)
            if not m:
                continue
            layer = int(m.group(1)) if rx.groups else None
            if where == "in":
                handles.append(mod.register_forward_pre_hook(hook_for(layer, tag, where),
                                                             with_kwargs=True))
            else:
                handles.append(mod.register_forward_hook(hook_for(layer, tag, where)))
        m = attn_rx.match(name) if attn_rx else None
        if m:
            lay = int(m.group(1))
            handles.append(mod.register_forward_pre_hook(
                lambda mod, args, lay=lay: current_attn.__setitem__(0, lay)))

    positions = [0]  # of the forward running

    def step_start(mod, args, kwargs):
        if cap.steps_started:
            cap.step += 1
        cap.steps_started += 1
        positions[0] = step_positions(args, kwargs)

    def step_end(mod, args, kwargs, out):
        cap.flush()
        cap.pos0 += positions[0]

    handles.append(model.register_forward_pre_hook(step_start, with_kwargs=True))
    handles.append(model.register_forward_hook(step_end, with_kwargs=True))
    if rope:
        mod, orig = rope_fn

        def rope_probe(*args, **kwargs):
            q, k = orig(*args, **kwargs)
            cap.record(current_attn[0], "q_rope", q)
            cap.record(current_attn[0], "k_rope", k)
            return q, k

        setattr(mod, rope[1], rope_probe)
        restore = (mod, rope[1], orig)
    ok, message = True, None
    try:
        yield cap
    except BaseException as e:
        ok, message = False, f"{type(e).__name__}: {e}"
        raise
    finally:
        for h in handles:
            h.remove()
        if restore:
            setattr(*restore)
        # The probes held (a layer's before its layer_out) are complete: they are written first,
        # those closest to a crash included, then the end record. Nothing here replaces an
        # exception in flight.
        in_flight, late = not ok, None
        try:
            cap.flush()
        except BaseException as e:  # an interrupt while writing them: the rest is lost
            late = e
            if ok:
                ok, message = False, f"{type(e).__name__}: {e}"
        if ok and cap.fault is not None:
            ok, message = False, cap.fault
        try:
            # closes the file in any case; end_tokens that are not integers are written as an
            # error end record and raised
            sink.close(tokens=cap.end_tokens, decoded=cap.decoded, ok=ok, message=message)
        except BaseException as e:
            late = late or e
        if late is not None and not in_flight:
            raise late
