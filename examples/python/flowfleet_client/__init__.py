"""A small FlowFleet client: an mTLS channel to a collector and helpers around SampleService.

The message and stub modules are generated from proto/ by scripts/gen.sh into the ``gen`` directory next
to this file (never edit them). They import each other as top-level packages (``from flowfleet.v1 import
flow_pb2``, ``from buf.validate import validate_pb2``), so importing this package puts ``gen`` on
``sys.path``; after that ``import flowfleet.v1.sample_service_pb2`` works anywhere.

Runtime: grpcio and protobuf, e.g. Debian's python3-grpcio (1.51) and python3-protobuf (3.21, Python
package 4.21), which the generated code matches.
"""

import os
import sys

_GEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen")
if _GEN not in sys.path:
    sys.path.insert(0, _GEN)

import grpc  # noqa: E402

from flowfleet.v1 import fleet_service_pb2  # noqa: E402,F401
from flowfleet.v1 import fleet_service_pb2_grpc  # noqa: E402,F401
from flowfleet.v1 import flow_pb2  # noqa: E402
from flowfleet.v1 import sample_service_pb2  # noqa: E402
from flowfleet.v1 import sample_service_pb2_grpc  # noqa: E402

__all__ = [
    "MAX_MESSAGE_SIZE",
    "connect",
    "list_samples",
    "download_content",
    "iter_flows",
    "state_name",
    "protocol_name",
    "name_source_name",
    "escape",
    "flow_pb2",
    "fleet_service_pb2",
    "fleet_service_pb2_grpc",
    "sample_service_pb2",
    "sample_service_pb2_grpc",
]

# The collector accepts and sends messages up to 16 MiB; gRPC's default receive limit is 4 MiB, less than
# a full page of ListSampleFlows (10,000 flows) can take.
MAX_MESSAGE_SIZE = 16 << 20


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def connect(address, ca, cert, key, server_name=None):
    """Returns a gRPC channel to the collector at ``address`` ("host:port") over mutual TLS.

    ``ca`` is the fleet's CA bundle (ca.pem), ``cert`` and ``key`` a client certificate and its key from
    ``flowctl certs issue --role reader`` (or admin). The collector's certificate is verified against
    ``ca`` and the host of ``address``, or ``server_name`` when given: use it when you dial a name or
    address the collector's certificate does not list (it lists localhost and 127.0.0.1 unless issued
    with --dns/--ip).
    """
    creds = grpc.ssl_channel_credentials(
        root_certificates=_read(ca), private_key=_read(key), certificate_chain=_read(cert)
    )
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_SIZE),
        ("grpc.max_send_message_length", MAX_MESSAGE_SIZE),
    ]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return grpc.secure_channel(address, creds, options=options)


def list_samples(stub, host="", state=0, page_size=0, limit=None, timeout=30):
    """Yields samples newest first, following next_page_token; at most ``limit`` if given.

    ``stub`` is a SampleServiceStub; ``host`` and ``state`` (a SampleState value, 0 for any) filter.
    """
    token = ""
    n = 0
    while True:
        resp = stub.ListSamples(
            sample_service_pb2.ListSamplesRequest(
                host=host, state=state, page_size=page_size, page_token=token
            ),
            timeout=timeout,
        )
        for s in resp.samples:
            if limit is not None and n >= limit:
                return
            n += 1
            yield s
        token = resp.next_page_token
        if not token:
            return


def download_content(stub, sample_id, out, timeout=300):
    """Streams the sample's .bf (GetSampleContent) into the binary file object ``out``.

    Returns (sample, bytes written). Raises ValueError when a chunk's offset is not where the previous
    one ended or the total differs from the size the first message announced; grpc.RpcError on an RPC
    error (NOT_FOUND, or FAILED_PRECONDITION when the sample has no file yet).
    """
    sample = None
    written = 0
    for msg in stub.GetSampleContent(
        sample_service_pb2.GetSampleContentRequest(id=sample_id), timeout=timeout
    ):
        if sample is None:
            sample = msg.sample
        # offset 0 on a later chunk means the collector left it unset: the chunks still come in order.
        if msg.offset and msg.offset != written:
            raise ValueError("chunk at offset %d, expected %d" % (msg.offset, written))
        out.write(msg.chunk)
        written += len(msg.chunk)
    if sample is None:
        raise ValueError("GetSampleContent sent no message")
    if sample.bytes and written != sample.bytes:
        raise ValueError("got %d bytes, the sample has %d" % (written, sample.bytes))
    return sample, written


def iter_flows(stub, sample_id, page_size=0, timeout=60):
    """Yields the flows of a sample in the sensor's creation order (ListSampleFlows, every page)."""
    token = ""
    while True:
        resp = stub.ListSampleFlows(
            sample_service_pb2.ListSampleFlowsRequest(
                id=sample_id, page_size=page_size, page_token=token
            ),
            timeout=timeout,
        )
        yield from resp.flows
        token = resp.next_page_token
        if not token:
            return


def _enum_short(enum, prefix, value):
    try:
        name = enum.Name(value)
    except ValueError:
        return str(value)
    return name[len(prefix):].lower() if name.startswith(prefix) else name


def state_name(state):
    """SAMPLE_STATE_RELAY_FAILED -> "relay_failed"."""
    return _enum_short(sample_service_pb2.SampleState, "SAMPLE_STATE_", state)


def protocol_name(protocol):
    """PROTOCOL_TCP -> "tcp"."""
    return _enum_short(flow_pb2.Protocol, "PROTOCOL_", protocol)


def name_source_name(source):
    """NAME_SOURCE_PASSIVE -> "passive" (the .bf destinationNameSource)."""
    return _enum_short(flow_pb2.NameSource, "NAME_SOURCE_", source)


def escape(text):
    """Makes attacker-controlled text (a flow's dst_name comes from the wire) safe to print on a
    terminal: control characters, backslashes and non-printable characters become escapes."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)
