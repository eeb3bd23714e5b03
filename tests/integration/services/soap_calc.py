"""The adapter tests' SOAP service (tests/adapter/_soap_service.py, described by tests/fixtures/soap/calc.wsdl) as
a service Baton can slot.

Usage: python soap_calc.py NAME [faulty]  (listens on $BATON_SERVICE_PORT)
  Echo answers ``NAME:text``; faulty: every Echo answers a soap:Fault with HTTP 200 (as some stacks do).
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "adapter"))

from aiohttp import web  # noqa: E402

from _soap_service import soap_app  # noqa: E402

if __name__ == "__main__":
    name = sys.argv[1] if len(sys.argv) > 1 else "svc"
    faulty = len(sys.argv) > 2 and sys.argv[2] == "faulty"
    web.run_app(soap_app(name, faulty=faulty), host="127.0.0.1", port=int(os.environ["BATON_SERVICE_PORT"]),
                print=None, access_log=None)
