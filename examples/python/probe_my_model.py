"""probe_my_model.py — probes of your own PyTorch model with layerdiff.torch.capture: a toy
two-layer model, a module-name -> tag map, one prefill and two decode forwards, then
`layerdiff inspect OUT.jsonl` reads the stream. The recipe of docs/python.md, runnable.

usage: python probe_my_model.py OUT.jsonl   (torch installed: make python-deps, .venv-py)
"""

import sys

import torch

from layerdiff.torch import capture


class Block(torch.nn.Module):
    def __init__(self, h):
        super().__init__()
        self.norm = torch.nn.RMSNorm(h)
        self.up = torch.nn.Linear(h, 4 * h, bias=False)
        self.down = torch.nn.Linear(4 * h, h, bias=False)

    def forward(self, x):
        return x + self.down(torch.nn.functional.silu(self.up(self.norm(x))))


class Toy(torch.nn.Module):
    def __init__(self, vocab=100, h=32, layers=2):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, h)
        self.blocks = torch.nn.ModuleList(Block(h) for _ in range(layers))
        self.head = torch.nn.Linear(h, vocab, bias=False)

    def forward(self, ids):
        x = self.embed(ids)
        for b in self.blocks:
            x = b(x)
        return self.head(x)


# Module-name regex (its group is the layer) -> layerdiff tag, and which side of the module.
TAGS = [(r"embed", "embed", "out"),
        (r"blocks\.(\d+)\.norm", "mlp_norm", "out"),
        (r"blocks\.(\d+)\.up", "up_proj", "out"),
        (r"blocks\.(\d+)\.down", "mlp_act", "in"),
        (r"blocks\.(\d+)\.down", "down_proj", "out"),
        (r"blocks\.(\d+)", "layer_out", "out"),
        (r"head", "logits", "out")]


def main(out):
    torch.manual_seed(0)
    model, prompt = Toy().eval(), [5, 17, 42]
    with capture(model, out, tokens=prompt, decode_steps=2, tag_map=TAGS, rope=None,
                 payload="full") as cap, torch.no_grad():
        ids, fed = torch.tensor([prompt]), []
        for step in range(3):  # a forward of the model is one step: prefill, then decode
            logits = model(ids)[:, -1]
            cap.end_tokens.append(int(logits.argmax()))
            ids = logits.argmax(-1, keepdim=True)
            fed.append(int(ids))
        cap.decoded = fed[:2]  # the tokens the decode steps were fed
    print(f"{out}: prefill + 2 decode steps, argmax {cap.end_tokens}")


if __name__ == "__main__":
    main(sys.argv[1])
