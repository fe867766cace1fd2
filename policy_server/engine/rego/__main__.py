"""``python -m policy_server.engine.rego OPA_BINARY``: regenerate ``capabilities.json`` from a pinned OPA."""

import json
import subprocess
import sys
from pathlib import Path

from policy_server.engine.rego._types import trim_capabilities

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m policy_server.engine.rego /path/to/opa")
    raw = subprocess.run([sys.argv[1], "capabilities", "--current"], check=True, capture_output=True, text=True)
    target = Path(__file__).parent / "capabilities.json"
    target.write_text(json.dumps(trim_capabilities(json.loads(raw.stdout)), indent=1, sort_keys=True) + "\n")
    print(f"wrote {target}")
