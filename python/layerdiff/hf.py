"""layerdiff.hf — `python -m layerdiff.hf MODEL_DIR --follow REF.jsonl --probes OUT.jsonl`: runs
transformers' own Qwen3 on the prompt and forced decode tokens of a layerdiff stream and writes
its probes, so `layerdiff compare REF OUT` needs no other glue. Not the hooks (layerdiff.torch).
Exit codes as the layerdiff command's: 0 ok, 2 bad usage or input, 3 the followed stream is
incomplete."""

import argparse
import inspect
import json
import os
import re
import sys

from . import probes

USAGE_EXIT, INCOMPLETE_EXIT = 2, 3
# The config fields `layerdiff compare` holds the two headers to (compare/compare_headers.c).
CONFIG_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                 "head_dim", "intermediate_size", "vocab_size", "max_position_embeddings",
                 "rms_norm_eps", "rope_theta", "tie_word_embeddings")

# What layerdiff's own config reader requires (model/config.c): without them transformers would
# build a model of its default sizes.
REQUIRED_INTS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                 "intermediate_size", "vocab_size", "max_position_embeddings")


class RunError(Exception):
    def __init__(self, msg, code=USAGE_EXIT):
        super().__init__(msg)
        self.code = code


def read_follow(path):
    """The prompt, the decode step count (the header's, not the probes present: a stream
    written with --steps holds fewer), the tokens fed to the decode steps (end.decoded) and the
    prompt's text (None when it was given as ids)."""
    try:
        with probes.Reader(path, decode_data=False) as r:
            for _ in r:
                pass
            header, end = r.header, r.end
    except probes.ProbeError as e:
        raise RunError(f"--follow: {e}", INCOMPLETE_EXIT if e.kind == "truncated"
                       else USAGE_EXIT) from e
    except OSError as e:
        raise RunError(f"--follow: {path}: {e.strerror}") from e
    tokens, steps = header["input"]["tokens"], header["input"]["decode_steps"]
    text = header["input"].get("text")
    if len(end["decoded"]) < steps:
        raise RunError(f"--follow: {path}: the header asks for {steps} decode steps but the end "
                       f"record holds {len(end['decoded'])} decoded tokens (status "
                       f"{end['status']})", INCOMPLETE_EXIT)
    return tokens, steps, end["decoded"][:steps], text


def model_info(model_dir):
    """The header's model object: the architecture and config.json's fields that compare checks.
    No fingerprint: layerdiff's is computed by its C reader, and this run does not claim it."""
    path = os.path.join(model_dir, "config.json")
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise RunError(f"{path}: cannot read the model config: {e}") from e
    if not isinstance(cfg, dict):
        raise RunError(f"{path}: the model config is not a JSON object")
    archs = cfg.get("architectures")
    if not isinstance(archs, list) or not archs or not all(isinstance(a, str) for a in archs):
        raise RunError(f"{path}: architectures is missing or not a list of names")
    if cfg.get("model_type") != "qwen3" or "Qwen3ForCausalLM" not in archs:
        raise RunError(f"{path}: model_type {cfg.get('model_type')!r}, architectures "
                       f"{', '.join(archs)[:200]}: only Qwen3 (model_type 'qwen3', "
                       "Qwen3ForCausalLM) runs here; capture other models with "
                       "layerdiff.torch.capture and a tag map of your own")
    for k in REQUIRED_INTS:  # transformers would put its own defaults in their place
        v = cfg.get(k)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise RunError(f"{path}: {k} is {'missing' if k not in cfg else repr(v)}, expected a "
                           "positive integer")
    eps = cfg.get("rms_norm_eps")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
        raise RunError(f"{path}: rms_norm_eps is {'missing' if eps is None else repr(eps)}, "
                       "expected a positive number")
    rope = cfg.get("rope_parameters")
    if "rope_theta" not in cfg and not (isinstance(rope, dict) and "rope_theta" in rope):
        raise RunError(f"{path}: rope_theta is missing (neither top-level nor in "
                       "rope_parameters)")
    info = {"architecture": "Qwen3ForCausalLM"}
    info.update({k: cfg[k] for k in CONFIG_FIELDS if k in cfg})
    return info


def check_inputs(tokens, decoded, info, follow, model_dir):
    """Refuses, before the model loads and before --probes is touched, ids the model cannot run
    (in the words of `layerdiff run`'s checks, model/generate.c): an empty prompt, more positions
    than max_position_embeddings, an id of the prompt or of the decoded tokens outside
    [0, vocab_size) (a stream of a model with a larger vocabulary)."""
    cfg = os.path.join(model_dir, "config.json")
    if not tokens:
        raise RunError(f"--follow {follow}: the prompt is empty: the followed stream's "
                       "input.tokens holds no token id")
    vocab, most = info["vocab_size"], info["max_position_embeddings"]
    if len(tokens) + len(decoded) > most:
        raise RunError(f"--follow {follow}: prompt of {len(tokens)} tokens plus {len(decoded)} "
                       f"decode steps is longer than the model's max_position_embeddings "
                       f"({most}, {cfg})")
    for what, ids in (("prompt", tokens), ("followed", decoded)):
        for i, t in enumerate(ids):
            if not 0 <= t < vocab:
                raise RunError(f"--follow {follow}: {what} token at index {i} is {t}, outside "
                               f"the vocabulary [0, {vocab}) of {cfg}")


def _version(text):
    """(major, minor) of a version string such as "4.51.3" or "5.0.0rc1"."""
    m = re.match(r"(\d+)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def load_model(model_dir, dtype, device, attn):
    """transformers' Qwen3ForCausalLM from model_dir; a weight the checkpoint lacks (an untied
    model without lm_head.weight) or holds in excess is an error, never a random tensor."""
    import torch
    import transformers
    tdtype = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}[dtype]
    # transformers 4.56 renamed torch_dtype to dtype; before it, dtype reaches the model's
    # constructor and fails there
    dtype_arg = "dtype" if _version(transformers.__version__) >= (4, 56) else "torch_dtype"
    try:
        model, info = transformers.Qwen3ForCausalLM.from_pretrained(
            model_dir, attn_implementation=attn, output_loading_info=True,
            **{dtype_arg: tdtype})
    except Exception as e:  # OSError, RuntimeError (tensors of other sizes), SafetensorError...
        raise RunError(f"{model_dir}: transformers cannot load the checkpoint: "
                       f"{type(e).__name__}: {str(e)[:2000]}") from e
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    missing = [k for k in info.get("missing_keys", [])
               if not (tied and k == "lm_head.weight")]
    unexpected = list(info.get("unexpected_keys", []))
    if missing or unexpected:
        raise RunError(f"{model_dir}: the checkpoint does not match transformers' Qwen3 "
                       f"(missing: {', '.join(sorted(missing)) or 'none'}; unexpected: "
                       f"{', '.join(sorted(unexpected)) or 'none'}): refusing to run with "
                       "randomly initialised weights")
    try:
        return model.to(device).eval()
    except (RuntimeError, ValueError) as e:  # e.g. out of device memory
        raise RunError(f"--device {device}: cannot move the model there: {str(e)[:500]}") from e


def run(model, tokens, decode_steps, decoded, cap):
    """The prefill then one forward per decode step fed decoded[i]; the argmax of each step's
    last logits row goes to cap.end_tokens (-1 when no logit is finite)."""
    import torch
    import transformers
    device = next(model.parameters()).device
    try:
        cache = transformers.DynamicCache(config=model.config)
    except TypeError:  # transformers 4.x
        cache = transformers.DynamicCache()
    # transformers 5.x renamed past_key_values to cache (the old name is deprecated)
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters \
        else "past_key_values"
    ids = torch.tensor([tokens], dtype=torch.long, device=device)
    argmax = []
    with torch.no_grad():
        for step in range(decode_steps + 1):
            out = model(input_ids=ids, use_cache=True, **{cache_arg: cache})
            last = out.logits[0, -1].float()
            finite = torch.isfinite(last)
            argmax.append(int(torch.where(finite, last, -torch.inf).argmax())
                          if bool(finite.any()) else -1)
            if step < decode_steps:
                ids = torch.tensor([[decoded[step]]], dtype=torch.long, device=device)
    if cap is not None:
        cap.end_tokens, cap.decoded = argmax, list(decoded)
    return argmax


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): not the same file
        return False


# What transformers and tokenizers read from a checkpoint directory: no output may be one of these.
_CHECKPOINT_FILES = ("config.json", "generation_config.json", "tokenizer.json",
                     "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
                     "added_tokens.json", "chat_template.jinja")
_CHECKPOINT_SUFFIXES = (".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json",
                        ".model", ".tiktoken")


def check_output(path, follow, model_dir):
    """Refuses, before the model loads, a --probes that would destroy an input (the followed
    stream, a file of the checkpoint) or that cannot be written (empty, a directory, in a missing
    one, a .gz path, which the probe writer refuses)."""
    if not path:
        raise RunError("--probes is empty: give the path of the stream to write")
    if path.endswith(".gz"):
        raise RunError(f"--probes {path}: the probe writer does not compress (a gzip stream cut "
                       "by a crash loses its last records); write without .gz and gzip the "
                       "finished file")
    if _same_file(path, follow):
        raise RunError(f"--probes {path} is the followed stream --follow {follow}: writing it "
                       "would destroy it")
    try:
        names = os.listdir(model_dir)
    except OSError:
        names = []  # model_info reports an unreadable checkpoint
    for name in sorted(names):
        if name in _CHECKPOINT_FILES or name.endswith(_CHECKPOINT_SUFFIXES):
            if _same_file(path, os.path.join(model_dir, name)):
                raise RunError(f"--probes {path} is the checkpoint's {name} "
                               f"({os.path.join(model_dir, name)}): writing it would destroy it")
    if os.path.isdir(path):
        raise RunError(f"--probes {path} is a directory, not a file to write")
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        raise RunError(f"--probes {path}: the directory {parent} does not exist")


def check_device(torch, device):
    """A torch device that exists here, or a RunError naming it."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as e:
        raise RunError(f"--device {device}: not a torch device ({e})") from e
    if dev.type == "meta":
        raise RunError(f"--device {device}: meta tensors hold no data (nothing could be computed "
                       "or probed): use cpu or cuda")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RunError(f"--device {device}: torch sees no CUDA device here")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise RunError(f"--device {device}: torch sees {torch.cuda.device_count()} CUDA "
                       "device(s)")


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python -m layerdiff.hf",
        description="Run transformers' Qwen3 on the prompt and decode tokens of a layerdiff "
                    "stream and write its probes (compare them with `layerdiff compare REF OUT`).",
        epilog="environment: LAYERDIFF_PROBE_TAGS, _LAYERS, _STEPS, _PAYLOAD, _ENCODING as for "
               "`layerdiff run`; options win. exit codes: 0 ok, 2 bad usage or input, 3 the "
               "followed stream is incomplete")
    ap.add_argument("model_dir", metavar="MODEL_DIR", help="checkpoint (config.json + safetensors)")
    ap.add_argument("--follow", required=True, metavar="REF.jsonl",
                    help="the stream whose prompt and decoded tokens to feed")
    ap.add_argument("--probes", required=True, metavar="OUT.jsonl", help="where to write probes")
    ap.add_argument("--dtype", choices=("f32", "bf16", "f16"), default="f32",
                    help="compute dtype (default f32)")
    ap.add_argument("--device", default="cpu", help="torch device: cpu (default), cuda, cuda:1")
    ap.add_argument("--attn", choices=("eager", "sdpa"), default="eager",
                    help="transformers' attention implementation (default eager)")
    ap.add_argument("--payload", choices=("stats", "full"), help="default: $LAYERDIFF_PROBE_"
                    "PAYLOAD, else stats")
    ap.add_argument("--encoding", choices=probes.ENCODINGS, help="encoding of the payloads "
                    "of --payload full (default: $LAYERDIFF_PROBE_ENCODING, else base64)")
    args = ap.parse_args(argv)
    try:
        check_output(args.probes, args.follow, args.model_dir)
        tokens, steps, decoded, text = read_follow(args.follow)
        info = model_info(args.model_dir)
        check_inputs(tokens, decoded, info, args.follow, args.model_dir)
        try:
            import torch
            import transformers
        except ImportError as e:
            raise RunError(f"{e}: install the extras: pip install 'layerdiff[hf]' (or make "
                           "python-deps)") from e
        from . import torch as ldtorch
        check_device(torch, args.device)
        model = load_model(args.model_dir, args.dtype, args.device, args.attn)
        backend = {"name": "transformers", "device": args.device, "compute_dtype": args.dtype,
                   "attn_implementation": args.attn, "transformers": transformers.__version__,
                   "torch": torch.__version__}
        sink_args = {k: v for k, v in (("payload", args.payload), ("encoding", args.encoding))
                     if v}
        if text is not None:
            sink_args["text"] = text
        with ldtorch.capture(model, args.probes, tokens=tokens, decode_steps=steps,
                             implementation="transformers", backend=backend, model_info=info,
                             **sink_args) as cap:
            argmax = run(model, tokens, steps, decoded, cap)
    except RunError as e:
        print(f"layerdiff.hf: {e}", file=sys.stderr)
        return e.code
    except probes.ProbeError as e:
        print(f"layerdiff.hf: {e}", file=sys.stderr)
        return USAGE_EXIT
    print(" ".join(map(str, argmax)))
    if cap.fault is not None:  # the stream ended with an error end record naming it
        print(f"layerdiff.hf: {args.probes}: {cap.fault}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
