"""Tolerances of the conformance kit, by compute dtype, and the comparison it uses."""

from __future__ import annotations

import torch

#: (atol, rtol): float32 results must match the fp32 reference closely; bfloat16 results
#: may differ by about two bf16 ulps (2**-7 relative) after rounding at different points.
#: float16 (used only where a platform's default dtype is float16) sits between the two.
TOLERANCES = {"float32": (1e-4, 1e-4), "bfloat16": (2e-2, 2e-2), "float16": (5e-3, 5e-3)}

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: str, what: str) -> None:
    """``torch.testing.assert_close`` at the kit's tolerance, on the host, naming ``what``."""
    atol, rtol = TOLERANCES[dtype]
    torch.testing.assert_close(
        actual.detach().cpu().float(), expected.detach().cpu().float(), atol=atol, rtol=rtol,
        msg=lambda m: f"{what} differs from the reference ({dtype}, atol={atol}, rtol={rtol}):\n{m}",
    )
