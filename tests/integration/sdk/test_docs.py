"""docs/sdk.md's python blocks run, in order, against the shared worker (a fresh tenant)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import unique

pytestmark = pytest.mark.integration
DOC = Path(__file__).resolve().parents[3] / "docs" / "sdk.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_docs_have_python_blocks() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_docs_python_block_runs(index: int, bus_url, token_for) -> None:
    tenant = "docs" + unique()[-8:]  # one tenant per block keeps blocks independent
    env = {**os.environ, "ESB_URL": bus_url, "ESB_TOKEN": token_for(tenant)}
    done = subprocess.run([sys.executable, "-c", BLOCKS[index]], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
