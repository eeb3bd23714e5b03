"""The shop's users service as a process: runs services/users/app.py (the same file its image runs).

Run behind its node with: baton slot users "python services/users.py"
"""

import runpy
from pathlib import Path

runpy.run_path(str(Path(__file__).resolve().parent / "users" / "app.py"), run_name="__main__")
