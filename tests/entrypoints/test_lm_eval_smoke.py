"""lm-evaluation-harness against the server, offline, with the server's own tokenizer endpoints.

lm-eval is large (≈ 760 MB with its dependencies), so CI does not install it: set
``PLINTH_LM_EVAL=/path/to/lm_eval`` (the CLI of a venv with ``pip install "lm-eval[api]"``) to run.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from server_process import ServerProcess, require_default_model

HERE = Path(__file__).parent / "lm_eval"


@pytest.mark.skipif(not os.environ.get("PLINTH_LM_EVAL"), reason="set PLINTH_LM_EVAL to an lm_eval CLI to run")
def test_lm_eval_loglikelihood_task_runs_offline(tmp_path):
    # lm-eval's remote tokenizer sends no API key to /tokenizer_info, so this server has none.
    require_default_model()
    server = ServerProcess(api_key=None).wait_ready()
    try:
        _run_lm_eval(server, tmp_path)
    finally:
        server.stop()


def _run_lm_eval(server, tmp_path):
    task = (HERE / "plinth_smoke.yaml").read_text().replace("DATA_FILE", str(HERE / "plinth_smoke.jsonl"))
    (tmp_path / "plinth_smoke.yaml").write_text(task)
    args = f"base_url={server.url}/v1/completions,model=SmolLM2-135M-Instruct,tokenizer_backend=remote," \
           "num_concurrent=1,max_retries=1"
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "OPENAI_API_KEY": "unused"}
    out = subprocess.run([os.environ["PLINTH_LM_EVAL"], "--model", "local-completions", "--model_args", args,
                          "--tasks", "plinth_smoke", "--include_path", str(tmp_path)],
                         capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    acc = float(re.search(r"\|acc\s*\|[^|]*\|([0-9.]+)\|", out.stdout).group(1))
    assert acc >= 0.5  # SmolLM2 knows these capitals; chance is 0.25
