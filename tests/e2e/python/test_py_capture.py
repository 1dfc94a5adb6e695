"""test_py_capture.py — layerdiff.torch.capture on models that are not transformers' Qwen3, and
layerdiff.hf's refusals before the model loads: a crash (an exception, KeyboardInterrupt) keeps
the probes held at the time; modules that run twice, give a scalar, five dimensions, a dict or a
ModelOutput, are called with keywords or on zero positions never abort the forward; end tokens
as tensors, and a bad end description under an exception in flight; pos0 from input_ids, from
inputs_embeds, set by the caller; probing off still yields a Capture; a followed stream of ids
the model cannot run, --device meta and an empty --probes refused with exit 2 before anything is
loaded or written. Not the agreement with the reference (test_py_torch.py).

usage: test_py_capture.py VENV_PYTHON   (LD_BIN, LD_SRC; runs itself again under VENV_PYTHON;
skips with 77 when it lacks torch and transformers, unless LD_REQUIRE_TORCH=1: then a failure)
"""

import math
import os
import subprocess
import sys
import tempfile
import warnings

SRC, LD_BIN, VPY = os.environ["LD_SRC"], os.environ["LD_BIN"], sys.argv[1]
sys.path.insert(0, os.path.join(SRC, "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from checks import check, finish, run_each  # noqa: E402

ENV = dict(os.environ, PYTHONPATH=os.path.join(SRC, "python"), HF_HUB_OFFLINE="1",
           TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")


def inspect(path):
    return subprocess.run([LD_BIN, "inspect", path], capture_output=True, text=True)


def keys(path):
    from layerdiff import probes
    return [p.key for p in probes.Stream(path).probes]


def toy():
    """Two blocks (norm, up, down) between an embedding and a head; block 1's down raises while
    armed (armed = the exception to raise)."""
    import torch

    class Down(torch.nn.Linear):
        armed = None

        def forward(self, x):
            if self.armed is not None:
                raise self.armed
            return super().forward(x)

    class Block(torch.nn.Module):
        def __init__(self, h):
            super().__init__()
            self.norm = torch.nn.RMSNorm(h)
            self.up = torch.nn.Linear(h, 2 * h, bias=False)
            self.down = Down(2 * h, h, bias=False)

        def forward(self, x):
            return x + self.down(torch.nn.functional.silu(self.up(self.norm(x))))

    class Toy(torch.nn.Module):
        def __init__(self, vocab=50, h=8):
            super().__init__()
            self.embed = torch.nn.Embedding(vocab, h)
            self.blocks = torch.nn.ModuleList(Block(h) for _ in range(2))
            self.head = torch.nn.Linear(h, vocab, bias=False)

        def forward(self, ids):
            x = self.embed(ids)
            for b in self.blocks:
                x = b(x)
            return self.head(x)

    torch.manual_seed(0)
    return Toy().eval()


TOY_TAGS = [(r"embed", "embed", "out"), (r"blocks\.(\d+)\.norm", "mlp_norm", "out"),
            (r"blocks\.(\d+)\.up", "up_proj", "out"), (r"blocks\.(\d+)\.down", "mlp_act", "in"),
            (r"blocks\.(\d+)\.down", "down_proj", "out"), (r"blocks\.(\d+)", "layer_out", "out"),
            (r"head", "logits", "out")]


def test_crash_keeps_held_probes(d):
    """A forward that dies inside layer 1 of step 1: the layer's probes taken before the crash
    are written, then the error end record; the exception is the one that propagates."""
    import torch
    from layerdiff import probes
    from layerdiff.torch import capture
    for exc in (RuntimeError("boom"), KeyboardInterrupt()):
        model, out = toy(), os.path.join(d, "crash.jsonl")
        try:
            with capture(model, out, tokens=[1, 2], decode_steps=1, tag_map=TOY_TAGS,
                         rope=None) as cap, torch.no_grad():
                model(torch.tensor([[1, 2]]))
                model.blocks[1].down.armed = exc
                model(torch.tensor([[3]]))
            check(False, f"{type(exc).__name__}: nothing raised")
        except BaseException as e:  # noqa: BLE001
            check(e is exc, f"{type(exc).__name__}: got {type(e).__name__}: {e}")
        got = keys(out) if os.path.exists(out) else []
        end = probes.Stream(out).end if got else {}
        check(got[-4:] == ["S1.L0.layer_out", "S1.L1.mlp_norm", "S1.L1.up_proj",
                           "S1.L1.mlp_act"] and end.get("status") == "error" and
              type(exc).__name__ in end.get("message", ""),
              f"{type(exc).__name__}: the probes held at the crash: {got[-5:]} {end}")
        r = inspect(out)
        check(r.returncode == 3 and "S1.L1.mlp_act" in r.stdout + r.stderr,
              f"{type(exc).__name__}: inspect exit {r.returncode}: {r.stderr[-300:]}")


def odd_cases():
    """Modules a hook may meet, one per model (m, run `calls` times per forward, with x as a
    keyword when kw): (what, module, calls, kw, where, input shapes of the two steps, the
    probe shapes expected (None: not written), warnings expected per step)."""
    import dataclasses

    import torch
    from transformers.utils import ModelOutput

    @dataclasses.dataclass
    class Out(ModelOutput):
        logits: torch.Tensor = None

    class Fn(torch.nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x):
            return self.fn(x)

    class Keyword(torch.nn.Module):
        def forward(self, *, x):
            return x * 2

    t3, t0 = (1, 3, 4), (1, 0, 4)
    return (
        ("run three times", torch.nn.Linear(4, 4), 3, False, "out", (t3, t3), [(3, 4)] * 2,
         "was taken again in the same step"),
        ("called with a keyword", Keyword(), 1, True, "in", (t3, t0), [(3, 4), (0, 4)], None),
        ("a 0-d output", Fn(lambda x: x.sum()), 1, False, "out", (t3, t0), [(1,), (1,)], None),
        ("five dimensions", Fn(lambda x: x.reshape(1, 1, 1, *x.shape)), 1, False, "out",
         (t3, t3), [None, None], "5 dimensions, more than layerdiff's 4"),
        ("a dict", Fn(lambda x: {"mask": None, "h": x + 1}), 1, False, "out", (t3, t0),
         [(3, 4), (0, 4)], None),
        ("a ModelOutput", Fn(lambda x: Out(logits=x - 1)), 1, False, "out", (t3, t0),
         [(3, 4), (0, 4)], None),
        ("a tuple led by None", Fn(lambda x: (None, x * 3)), 1, False, "out", (t3, t0),
         [(3, 4), (0, 4)], None),
        ("heads of zero positions", Fn(lambda x: x), 1, False, "out", (t3, t0),
         [(3, 2, 2), (0, 2, 2)], None))


def test_odd_modules(d):
    """No probe aborts the forward: a module run again keeps its first probe (one warning per
    key), a scalar is [1], more than four dimensions are left out with a warning, a keyword
    argument, a dict's, a ModelOutput's or a tuple's first tensor are probed, [1, 0, 4] splits
    into [0, heads, 2]."""
    import torch
    from layerdiff import probes
    from layerdiff.torch import capture

    class Wrap(torch.nn.Module):
        def __init__(self, m, calls, kw):
            super().__init__()
            self.m, self.calls, self.kw = m, calls, kw

        def forward(self, x):
            outs = [self.m(x=x) if self.kw else self.m(x) for _ in range(self.calls)]
            return outs[0]

    for what, module, calls, kw, where, inputs, shapes, warned in odd_cases():
        model, out = Wrap(module, calls, kw).eval(), os.path.join(d, "odd.jsonl")
        firsts = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                with capture(model, out, tokens=[1, 2, 3], decode_steps=1,
                             tag_map=[("m", "odd", where)], rope=None,
                             n_heads={"odd": 2} if what.startswith("heads") else None,
                             payload="full") as cap, torch.no_grad():
                    for shape in inputs:
                        firsts.append(model(torch.arange(float(math.prod(shape))).reshape(shape)))
                    cap.end_tokens, cap.decoded = [0, 0], [0]
            except Exception as e:  # noqa: BLE001 -- exactly what must not happen
                check(False, f"{what}: the forward raised {type(e).__name__}: {e}")
                continue
        said = [str(w.message) for w in caught if "layerdiff capture" in str(w.message)]
        want = [] if warned is None else [f"probe S{i}.odd" for i in range(2)]
        check(len(said) == len(want) and all(k in m and warned in m for k, m in zip(want, said)),
              f"{what}: warnings {said}")
        r = inspect(out)
        check(r.returncode == 0, f"{what}: inspect exit {r.returncode}: {r.stderr[-300:]}")
        s = probes.Stream(out)
        got = [s.by_key[(i, None, "odd")].shape if (i, None, "odd") in s.by_key else None
               for i in range(2)]
        check(got == shapes and s.end["status"] == "ok", f"{what}: shapes {got}, {s.end}")
        if calls > 1 and got[0] is not None:
            check(bool((s.tensor(0, None, "odd") == firsts[0][0].numpy()).all()),
                  f"{what}: the probe is the first call's output")


def test_end_tokens(d):
    """end_tokens of 0-d tensors are written; float ones under an exception in flight leave the
    exception to propagate and the stream ended with an error record."""
    import torch
    from layerdiff import probes
    from layerdiff.torch import capture
    model, out = toy(), os.path.join(d, "tokens.jsonl")
    try:
        with capture(model, out, tokens=[1, 2], decode_steps=0, tag_map=TOY_TAGS,
                     rope=None) as cap, torch.no_grad():
            logits = model(torch.tensor([[1, 2]]))
            cap.end_tokens = [logits[0, -1].argmax()]
        end = probes.Stream(out).end
        check(end["status"] == "ok" and end["tokens"] == [int(logits[0, -1].argmax())],
              f"tensor end tokens: {end}")
    except Exception as e:  # noqa: BLE001
        check(False, f"tensor end tokens: {type(e).__name__}: {e}")
    try:
        with capture(model, out, tokens=[1, 2], decode_steps=0, tag_map=TOY_TAGS,
                     rope=None) as cap, torch.no_grad():
            cap.end_tokens = [model(torch.tensor([[1, 2]]))[0, -1].max()]  # a float
            raise ValueError("mine")
    except ValueError as e:
        check(str(e) == "mine", f"the exception in flight: {e}")
    except Exception as e:  # noqa: BLE001
        check(False, f"the exception in flight replaced by {type(e).__name__}: {e}")
    try:
        end = probes.Stream(out).end
        check(end["status"] == "error" and end["message"].startswith("ValueError: mine") and
              "must be an integer" in end["message"], f"bad end tokens in flight: {end}")
    except probes.ProbeError as e:
        check(False, f"bad end tokens in flight: {e}")


def test_pos0(d):
    """pos0 advances by a float input's sequence length, by inputs_embeds' when it is the only
    input, and the caller may set it."""
    import torch
    from layerdiff import probes
    from layerdiff.torch import capture

    class Embeds(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(8, 8)

        def forward(self, input_ids=None, inputs_embeds=None):
            return self.lin(inputs_embeds)

    for what, model, call in (
            ("Sequential", torch.nn.Sequential(torch.nn.Linear(8, 8)), lambda m, x: m(x)),
            ("inputs_embeds", Embeds(), lambda m, x: m(inputs_embeds=x))):
        out = os.path.join(d, "pos0.jsonl")
        with capture(model, out, tokens=[1, 2, 3], decode_steps=3,
                     tag_map=[("0" if what == "Sequential" else "lin", "x", "out")],
                     rope=None) as cap, torch.no_grad():
            call(model, torch.ones(1, 3, 8))
            call(model, torch.ones(1, 1, 8))
            cap.pos0 = 10
            call(model, torch.ones(1, 2, 8))
            call(model, torch.ones(1, 1, 8))
        got = [p.pos0 for p in probes.Stream(out).probes]
        check(got == [0, 3, 10, 12], f"{what}: pos0 {got}, expected [0, 3, 10, 12]")


def test_probing_off(d):
    """capture(path=None) without LAYERDIFF_PROBES yields a Capture without a sink."""
    import torch
    from layerdiff.torch import capture
    model = toy()
    env = os.environ.pop("LAYERDIFF_PROBES", None)
    try:
        with capture(model, tokens=[1], decode_steps=0, tag_map=TOY_TAGS, rope=None) as cap, \
                torch.no_grad():
            cap.end_tokens = [int(model(torch.tensor([[1]]))[0, -1].argmax())]
        check(cap.sink is None, "probing off: no sink")
    except Exception as e:  # noqa: BLE001
        check(False, f"probing off: {type(e).__name__}: {e}")
    finally:
        if env is not None:
            os.environ["LAYERDIFF_PROBES"] = env


def test_hf_refusals(d):
    """A followed stream of ids the model cannot run, --device meta and an empty --probes: exit 2
    with a message, no traceback, before the model loads, and an existing output untouched."""
    from layerdiff import probes
    m = os.path.join(d, "tiny")  # vocab_size 512, max_position_embeddings 1024
    r = subprocess.run([LD_BIN, "gen-model", m, "--preset", "tiny"], capture_output=True)
    check(r.returncode == 0, f"gen-model: {r.stderr[-300:]}")
    streams = {}
    for name, tokens, steps, decoded in (("900", [1, 2, 900], 0, []), ("decoded", [1], 2, [3, 700]),
                                         ("empty", [], 0, []), ("long", [1] * 1020, 5, [1] * 5),
                                         ("good", [1, 2], 1, [3])):
        streams[name] = os.path.join(d, f"follow_{name}.jsonl")
        probes.Sink(streams[name], implementation="x", backend={}, model={}, tokens=tokens,
                    decode_steps=steps).close(tokens=[0] * (steps + 1), decoded=decoded)
    out = os.path.join(d, "kept.jsonl")
    for what, follow, extra, msg in (
            ("prompt id 900", "900", [], "prompt token at index 2 is 900, outside the vocabulary "
             "[0, 512)"),
            ("decoded id 700", "decoded", [], "followed token at index 1 is 700, outside the "
             "vocabulary [0, 512)"),
            ("empty prompt", "empty", [], "the prompt is empty"),
            ("1025 positions", "long", [], "prompt of 1020 tokens plus 5 decode steps is longer "
             "than the model's max_position_embeddings (1024"),
            ("--device meta", "good", ["--device", "meta"], "--device meta: meta tensors hold no "
             "data"),
            ("--probes ''", "good", ["--probes", ""], "--probes is empty")):
        with open(out, "wb") as f:
            f.write(b"precious")
        args = [VPY, "-m", "layerdiff.hf", m, "--follow", streams[follow], "--probes", out]
        r = subprocess.run(args + extra, capture_output=True, text=True, env=ENV)
        check(r.returncode == 2 and msg in r.stderr and "Traceback" not in r.stderr and
              "Loading" not in r.stderr and open(out, "rb").read() == b"precious",
              f"hf {what}: exit {r.returncode}: {r.stderr[-400:]}")


def test_hf_fault(d):
    """A probe that fails inside layerdiff.hf's run: the stream ends with an error end record
    naming it, and the command says so and exits 1 (not 0 with the argmax, as if all went well)."""
    import contextlib
    import io
    from layerdiff import hf, probes
    from layerdiff import torch as ldtorch
    m = os.path.join(d, "tiny_fault")
    r = subprocess.run([LD_BIN, "gen-model", m, "--preset", "tiny"], capture_output=True)
    check(r.returncode == 0, f"gen-model: {r.stderr[-300:]}")
    follow, out = os.path.join(d, "follow_fault.jsonl"), os.path.join(d, "fault.jsonl")
    probes.Sink(follow, implementation="x", backend={}, model={}, tokens=[1, 2],
                decode_steps=1).close(tokens=[0, 0], decoded=[3])
    real = ldtorch.Capture._record

    def broken(self, key, layer, tag, t):
        if tag == "q_norm":
            raise RuntimeError("a broken map")
        return real(self, key, layer, tag, t)

    ldtorch.Capture._record = broken
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = hf.main([m, "--follow", follow, "--probes", out])
    finally:
        ldtorch.Capture._record = real
    check(rc == 1 and "could not be taken" in err.getvalue() and "a broken map" in err.getvalue(),
          f"hf with a failing probe: exit {rc}: {err.getvalue()[-400:]}")
    end = probes.Stream(out).end
    check(end.get("status") == "error" and "a broken map" in end.get("message", ""),
          f"hf with a failing probe: end record {end}")


def main():
    if os.environ.get("LD_CAPTURE_INNER") != "1":  # run again under the venv's python
        if not os.path.exists(VPY) or subprocess.run(
                [VPY, "-c", "import torch, transformers"], capture_output=True).returncode:
            if os.environ.get("LD_REQUIRE_TORCH") == "1":
                print(f"FAIL: {VPY} lacks torch/transformers and LD_REQUIRE_TORCH=1 (make "
                      "python-deps)")
                return 1
            print(f"skipped: {VPY} lacks torch/transformers (make python-deps installs them)")
            return 77
        return subprocess.run([VPY, os.path.abspath(__file__), VPY],
                              env=dict(ENV, LD_CAPTURE_INNER="1")).returncode
    with tempfile.TemporaryDirectory() as d:
        run_each((test_crash_keeps_held_probes, test_odd_modules, test_end_tokens, test_pos0,
                     test_probing_off, test_hf_refusals, test_hf_fault), d)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
