"""Lists services through server reflection as grpcio-reflection does (it speaks v1alpha).

    python clients/python/examples/reflection_v1alpha.py [HOST:PORT]
"""

import sys

import grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
database = ProtoReflectionDescriptorDatabase(grpc.insecure_channel(address))
for service in database.get_services():
    print(service)
descriptor = database.FindFileContainingSymbol("affect.v1.Affect")
print("file:", descriptor.name)
