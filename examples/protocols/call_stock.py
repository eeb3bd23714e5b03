"""Call the protocols example's stock node with grpcio: one GetQuote and one WatchQuotes stream; prints the
answers as JSON lines.

    python call_stock.py 127.0.0.1:9402
"""

import json
import sys
import tempfile
from pathlib import Path

import grpc
from google.protobuf import json_format
from grpc_tools import protoc

HERE = Path(__file__).resolve().parent


def main(address: str) -> None:
    out = tempfile.mkdtemp(prefix="stock-")
    include = str(Path(protoc.__file__).parent / "_proto")  # the well-known types grpcio-tools ships
    if protoc.main(["protoc", f"-I{HERE}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}",
                    str(HERE / "stock.proto")]) != 0:
        raise SystemExit("stock.proto did not compile")
    sys.path.insert(0, out)
    import stock_pb2
    import stock_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = stock_pb2_grpc.StockStub(channel)
        quote = stub.GetQuote(stock_pb2.QuoteRequest(sku="A-1"), timeout=10)
        print(json.dumps({"GetQuote": json_format.MessageToDict(quote)}))
        for quote in stub.WatchQuotes(stock_pb2.QuoteRequest(sku="A-1"), timeout=10):
            print(json.dumps({"WatchQuotes": json_format.MessageToDict(quote)}))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9402")
