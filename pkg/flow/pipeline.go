package flow

// Pipeline feeds an engine on two goroutines: the caller's runs the per-frame stage (pre-filter, DNS
// walk, decoding, session-name parsing) and a second one runs the flow table, so that a long input is
// converted on two cores. The results are exactly those of Engine.Packet: every frame goes through the
// same two stages in the same order; the stages touch disjoint parts of the engine.
//
// Use it for offline conversion of a large input: Packet for every frame, then Close, and only then
// the engine's other methods (Flush, Stats, …). A Pipeline is not safe for concurrent use.
type Pipeline struct {
	e    *Engine
	cur  *prepBatch
	full chan *prepBatch
	free chan *prepBatch
	done chan struct{}
}

// pipelineBatch is the number of frames handed over at once; pipelineDepth the batches in flight.
// A batch is 128 KiB of records.
const (
	pipelineBatch = 2048
	pipelineDepth = 4
)

type prepBatch struct {
	n     int
	p     [pipelineBatch]prepared
	names [pipelineBatch]string // the session names of probes, parsed ahead: the bytes are gone by then
}

// NewPipeline starts the flow-table goroutine of e. Close must be called.
func NewPipeline(e *Engine) *Pipeline {
	pl := &Pipeline{e: e, full: make(chan *prepBatch, pipelineDepth), free: make(chan *prepBatch, pipelineDepth+1),
		done: make(chan struct{})}
	for i := 0; i < pipelineDepth; i++ {
		pl.free <- new(prepBatch)
	}
	pl.cur = new(prepBatch)
	go pl.run()
	return pl
}

func (pl *Pipeline) run() {
	defer close(pl.done)
	for b := range pl.full {
		for i := 0; i < b.n; i++ {
			sender, h := pl.e.canon(&b.p[i])
			pl.e.apply(&b.p[i], sender, h, b.names[i])
			b.names[i] = ""
		}
		b.n = 0
		pl.free <- b
	}
}

// Packet is Engine.Packet through the pipeline. The frame's bytes are not retained.
func (pl *Pipeline) Packet(link LinkType, t float64, data []byte) {
	p := &pl.cur.p[pl.cur.n]
	ok, payload := pl.e.prepare(link, t, data, p)
	if !ok {
		return
	}
	if p.probe {
		pl.cur.names[pl.cur.n] = SessionName(payload)
	}
	pl.cur.n++
	if pl.cur.n == pipelineBatch {
		pl.full <- pl.cur
		pl.cur = <-pl.free
	}
}

// Close hands over the last frames and waits until the flow table has taken every frame. The engine
// is then the caller's again.
func (pl *Pipeline) Close() {
	if pl.cur == nil {
		return
	}
	if pl.cur.n > 0 {
		pl.full <- pl.cur
	}
	pl.cur = nil
	close(pl.full)
	<-pl.done
}
