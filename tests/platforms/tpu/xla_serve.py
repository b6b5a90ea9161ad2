"""``plinth serve MODEL --device tpu`` on XLA:CPU: a /v1/completions request's greedy tokens equal
transformers'; a request with a seed (torch-xla has no per-request generators) gets a 400, not a dead engine.

Run by ``test_xla_cpu.py`` with the torch-xla venv's python (``PJRT_DEVICE=CPU``). The model is the
tiny random-weight llama of ``xla_e2e.py`` with a one-character-per-token tokenizer (token ``i`` is
the character U+4E00 + i), so the returned text maps back to token ids exactly.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch
import transformers

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))
from tests.e2e.greedy_oracle import assert_same_greedy, hf_greedy  # noqa: E402
from tests.platforms.tpu.xla_e2e import TINY  # noqa: E402

FIRST_CHAR = 0x4E00
MAX_TOKENS = 12


def save_char_tokenizer(path: Path, vocab_size: int) -> None:
    """A tokenizer with one CJK character per token id and no special tokens (decode = concatenation)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = {chr(FIRST_CHAR + i): i for i in range(vocab_size)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=chr(FIRST_CHAR)))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer).save_pretrained(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc: subprocess.Popen, url: str, log: Path, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"plinth serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"plinth serve was not ready within {timeout} s:\n{log.read_text()[-4000:]}")


def main() -> int:
    root = Path(tempfile.mkdtemp())
    model_dir = root / "llama"
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**TINY)).eval()
    hf.save_pretrained(model_dir)
    save_char_tokenizer(model_dir, TINY["vocab_size"])
    rng = random.Random(1)
    prompt = [rng.randrange(3, TINY["vocab_size"]) for _ in range(21)]
    port, log = free_port(), root / "serve.log"
    cmd = [sys.executable, "-m", "plinth_serve", "serve", str(model_dir), "--device", "tpu", "--port", str(port),
           "--dtype", "float32", "--max-model-len", "128", "--max-num-seqs", "8", "--max-num-batched-tokens", "64",
           "--served-model-name", "tiny-llama"]
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(proc, url, log)
        print(f"plinth serve --device tpu ready in {time.perf_counter() - start:.1f} s")
        text = "".join(chr(FIRST_CHAR + i) for i in prompt)
        request = {"model": "tiny-llama", "prompt": text, "max_tokens": MAX_TOKENS, "ignore_eos": True}
        seeded = httpx.post(url + "/v1/completions", timeout=300, json={**request, "seed": 3})
        if seeded.status_code != 400 or "per-request seeds are not supported" not in seeded.text:
            raise SystemExit(f"a seeded request (no generators on XLA) answered {seeded.status_code}: {seeded.text}")
        response = httpx.post(url + "/v1/completions", timeout=300, json={**request, "temperature": 0})
        if response.status_code != 200:
            raise SystemExit(f"/v1/completions answered {response.status_code}: {response.text}")
        body = response.json()
    finally:
        proc.terminate()
        proc.wait(60)
    ours = [ord(c) - FIRST_CHAR for c in body["choices"][0]["text"]]
    ref, ref_logits = hf_greedy(hf, prompt, MAX_TOKENS)
    assert_same_greedy(ours, ref, ref_logits)
    print(f"served greedy tokens equal transformers': {ours}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
