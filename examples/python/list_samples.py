#!/usr/bin/env python3
"""List a FlowFleet collector's samples, download one sample's .bf and print its flows.

Three SampleService calls over mutual TLS with a reader (or admin) certificate: ListSamples,
GetSampleContent (the .bf, streamed in chunks) and ListSampleFlows. See README.md.

Example:
  python3 list_samples.py --addr 127.0.0.1:7443 --ca pki/ca.pem \\
      --cert pki/reader-alice.pem --key pki/reader-alice-key.pem --server-name localhost
"""

import argparse
import datetime
import json
import os
import sys

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import flowfleet_client as ff  # noqa: E402

# States in which a sample has a .bf to download.
_WITH_FILE = {"written", "relayed", "relay_failed", "processed"}


def _utc(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


def _endpoint(addr, port):
    if not port:
        return ff.escape(addr)
    return ("[%s]:%s" if ":" in addr else "%s:%s") % (ff.escape(addr), ff.escape(port))


def _print_samples(samples):
    rows = [("ID", "HOST", "WINDOW START (UTC)", "REV", "STATE", "FLOWS", "BYTES", "FILE")]
    for s in samples:
        rows.append(
            (
                s.id,
                ff.escape(s.host),
                _utc(s.window_start),
                str(s.revision),
                ff.state_name(s.state),
                str(s.flow_count),
                str(s.bytes),
                ff.escape(s.file_name) or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def _print_flow(i, f):
    proto = ff.protocol_name(f.protocol).upper()
    dst = _endpoint(f.dst_addr, f.dst_port)
    name = ff.escape(f.dst_name)
    print(
        "%5d  %-5s %s -> %s (%s, %s)  pkts %d/%d  bytes %d/%d  %r-%r"
        % (
            i,
            proto,
            _endpoint(f.src_addr, f.src_port),
            name,
            dst,
            ff.name_source_name(f.name_source),
            f.src_pkts,
            f.dst_pkts,
            f.src_bytes,
            f.dst_bytes,
            f.first_seen,
            f.last_seen,
        )
    )


def main(argv=None):
    p = argparse.ArgumentParser(
        description="List a FlowFleet collector's samples, download one sample's .bf and print its flows.",
    )
    p.add_argument("--addr", default="127.0.0.1:7443", help="collector address, host:port (default %(default)s)")
    p.add_argument("--ca", required=True, help="the fleet's CA bundle (ca.pem)")
    p.add_argument("--cert", required=True, help="client certificate with role reader or admin (PEM)")
    p.add_argument("--key", required=True, help="the client certificate's private key (PEM)")
    p.add_argument(
        "--server-name",
        default="",
        help="name to verify the collector's certificate against, when it differs from the host in --addr",
    )
    p.add_argument("--host", default="", help="only samples of this sensor host")
    p.add_argument(
        "--state",
        default="",
        choices=["", "open", "closed", "written", "relayed", "relay_failed", "processed"],
        help="only samples in this state",
    )
    p.add_argument("--limit", type=int, default=50, help="list at most this many samples (default %(default)s)")
    p.add_argument(
        "--sample",
        default="",
        help="id of the sample to download and print (default: the newest listed sample that has a .bf)",
    )
    p.add_argument("--out", default=".", help="directory to save the .bf into (default: the current one)")
    p.add_argument("--max-flows", type=int, default=0, help="print at most this many flows (default: all)")
    p.add_argument("--list-only", action="store_true", help="only list samples")
    args = p.parse_args(argv)

    state = 0
    if args.state:
        state = ff.sample_service_pb2.SampleState.Value("SAMPLE_STATE_" + args.state.upper())

    with ff.connect(args.addr, args.ca, args.cert, args.key, args.server_name or None) as channel:
        stub = ff.sample_service_pb2_grpc.SampleServiceStub(channel)
        try:
            samples = list(ff.list_samples(stub, host=args.host, state=state, limit=args.limit))
        except grpc.RpcError as e:
            print("ListSamples: %s: %s" % (e.code().name, e.details()), file=sys.stderr)
            return 1
        print("%d sample%s" % (len(samples), "" if len(samples) == 1 else "s"))
        if samples:
            _print_samples(samples)
        if args.list_only:
            return 0

        sample_id = args.sample
        if not sample_id:
            with_file = [s for s in samples if ff.state_name(s.state) in _WITH_FILE]
            if not with_file:
                print("no listed sample has a .bf yet; nothing to download")
                return 0
            sample_id = with_file[0].id

        # GetSampleContent: the first message carries the sample (its file_name); write to a temporary
        # name and rename once complete.
        tmp = os.path.join(args.out, ".%s.part" % sample_id)
        try:
            with open(tmp, "wb") as out:
                sample, size = ff.download_content(stub, sample_id, out)
        except grpc.RpcError as e:
            os.unlink(tmp)
            print("GetSampleContent %s: %s: %s" % (sample_id, e.code().name, e.details()), file=sys.stderr)
            return 1
        except ValueError as e:
            os.unlink(tmp)
            print("GetSampleContent %s: %s" % (sample_id, e), file=sys.stderr)
            return 1
        # file_name comes from the collector: keep only a plain base name.
        name = os.path.basename(sample.file_name) or ("%s.bf" % sample_id)
        path = os.path.join(args.out, name)
        os.replace(tmp, path)
        print("downloaded %s: %d bytes -> %s" % (ff.escape(name), size, ff.escape(path)))
        try:
            with open(path, "rb") as f:
                bf = json.load(f)
            print(
                "  fileName %s, trafficDate %s, %d BayseFlows"
                % (ff.escape(str(bf.get("fileName"))), bf.get("trafficDate"), len(bf.get("BayseFlows", [])))
            )
        except (ValueError, AttributeError) as e:
            print("  (not a BayseFlow JSON file: %s)" % e)

        print("flows of sample %s (host %s, %s flows):" % (sample_id, ff.escape(sample.host), sample.flow_count))
        n = 0
        try:
            for f in ff.iter_flows(stub, sample_id):
                n += 1
                if not args.max_flows or n <= args.max_flows:
                    _print_flow(n, f)
        except grpc.RpcError as e:
            print("ListSampleFlows %s: %s: %s" % (sample_id, e.code().name, e.details()), file=sys.stderr)
            return 1
        if args.max_flows and n > args.max_flows:
            print("  ... %d more" % (n - args.max_flows))
        print("%d flow%s" % (n, "" if n == 1 else "s"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
