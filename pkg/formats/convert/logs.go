package convert

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/flowfleet/flowfleet/pkg/flow"
	"github.com/flowfleet/flowfleet/pkg/formats/interflow"
	"github.com/flowfleet/flowfleet/pkg/formats/netflow"
	"github.com/flowfleet/flowfleet/pkg/formats/zeek"
)

// logReaders maps the flow-log formats to their readers; each returns the flows in creation order with
// S, and the answer table its DNS data gave (nil for none).
var logReaders = map[Format]func(in io.Reader, path string, opts Options) (flow.Sample, *flow.AnswerTable, error){
	FormatZeek:      readZeek,
	FormatInterflow: readInterflow,
	FormatNetflow:   readNetflow,
}

func readInterflow(in io.Reader, path string, _ Options) (flow.Sample, *flow.AnswerTable, error) {
	return interflow.Read(in, path)
}

func readNetflow(in io.Reader, path string, opts Options) (flow.Sample, *flow.AnswerTable, error) {
	s, err := netflow.Read(in, path, netflow.Options{Location: opts.Location})
	return s, nil, err
}

func readZeek(in io.Reader, path string, opts Options) (flow.Sample, *flow.AnswerTable, error) {
	var dns io.Reader
	if opts.DNSLog != "" {
		f, err := os.Open(opts.DNSLog)
		if err != nil {
			return flow.Sample{}, nil, fmt.Errorf("open dns.log: %w", err)
		}
		defer f.Close()
		dns = f
	}
	return zeek.Read(in, path, dns, opts.DNSLog)
}

// convertLog runs a flow log (Zeek, Interflow, NetFlow) through its reader and the shared naming steps.
func convertLog(ctx context.Context, in io.Reader, path string, format Format, opts Options) (flow.Sample, error) {
	read, ok := logReaders[format]
	if !ok {
		return flow.Sample{}, fmt.Errorf("%w: format %q", ErrUnsupported, format)
	}
	if format != FormatZeek && opts.DNSLog != "" {
		return flow.Sample{}, fmt.Errorf("--dns goes with a Zeek conn.log, not with %s input", format)
	}
	s, answers, err := read(in, path, opts)
	if err != nil {
		return flow.Sample{}, err
	}
	if err := ctx.Err(); err != nil {
		return flow.Sample{}, err
	}
	if format == FormatInterflow {
		// R-ERR-6: the reference tests every flow destination's locality when it names the flows, and an
		// address it cannot parse aborts the conversion there (NetFlow's naming tests none).
		for i := range s.Flows {
			if _, ok := flow.ParseAddr(s.Flows[i].DstAddr); !ok {
				return flow.Sample{}, fmt.Errorf("%s: flow destination %q is not an IP address (R-ERR-6)", path, s.Flows[i].DstAddr)
			}
		}
	}
	flow.Finalize(&s, false)
	flow.Name(s.Flows, answers, flow.ActiveDestinations(s.Flows), opts.Cache)
	flow.FixZeroPackets(s.Flows)
	return s, nil
}
