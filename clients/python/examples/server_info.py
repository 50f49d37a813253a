"""Prints what an affectd server has loaded, and the clock offset to it.

    pip install clients/python
    python clients/python/examples/server_info.py [HOST:PORT]
"""

import sys

import affectd
from affectd.proto import affect_pb2

address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
with affectd.Client(address) as client:
    info = client.server_info()
    print(f"affectd {info.version} ({info.proto_package}), ONNX Runtime {info.onnxruntime_version or 'not loaded'}")
    for model in info.models:
        status = affect_pb2.ModelStatus.Name(model.status).removeprefix("MODEL_STATUS_")
        print(f"  model {model.id:<34} {status:<12} {model.reason}")
    for capability in info.capabilities:
        print(f"  capability {capability.name:<18} {'yes' if capability.available else 'no: ' + capability.reason}")
    offset, rtt = client.clock_offset()
    print(f"clock offset {offset * 1e3:+.3f} ms (round trip {rtt * 1e3:.3f} ms)")
