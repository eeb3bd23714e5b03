"""The shop's orders service as a process: runs services/orders/app.py (the same file its image runs).

Run behind its node with: baton slot orders "python services/orders.py"
With the planted PII leak the taint soak test finds: baton slot orders "python services/orders.py --leak-pii"
"""

import runpy
from pathlib import Path

runpy.run_path(str(Path(__file__).resolve().parent / "orders" / "app.py"), run_name="__main__")
