#!/usr/bin/python3
"""compare_pytorch.py --busy K starts K busy processes and stops them by pid however the comparison ends
(here: it fails at once on a benchmark binary that lists nothing)."""
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
script = os.path.join(HERE, "..", "compare_pytorch.py")
p = subprocess.run([sys.executable, script, "--bench", "/bin/true", "--busy", "2", "--check-params"],
                   capture_output=True, text=True, timeout=120)
m = re.search(r"load: 2 busy process\(es\), pids (\d+) (\d+)", p.stderr)
if not m:
    print("FAIL: no busy processes reported:\n" + p.stderr)
    sys.exit(1)
pids = [int(x) for x in m.groups()]
deadline = time.time() + 10
alive = pids
while alive and time.time() < deadline:
    alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}") and
             open(f"/proc/{pid}/stat").read().split()[2] != "Z"]
    time.sleep(0.1)
if alive:
    print(f"FAIL: busy processes still running: {alive}")
    for pid in alive:
        os.kill(pid, 9)
    sys.exit(1)
print(f"ok: busy processes {pids} started and stopped (compare_pytorch.py exit {p.returncode})")
