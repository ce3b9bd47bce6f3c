package store

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
)

// SaveBatches stores a group of batches in one transaction. Every step is a few multi-row statements
// (a round trip each on PostgreSQL, whatever the group's size), and shared rows are locked in one global
// order (streams, then windows, then hosts, each sorted) so that concurrent transactions of several
// collectors cannot deadlock:
//
//  1. the dedup marks of the group's streams: made if missing, then read and locked (FOR UPDATE on
//     PostgreSQL; SQLite has one writer), so that two collectors holding the same replayed batch
//     store it once (lockStreamMarks);
//  2. the new marks, after deciding which batches are at or below them (judgeBatches, saveStreamMarks);
//  3. the batches' parts, in arrival order (saveParts);
//  4. the windows they touch, one upsert row each (saveWindows);
//  5. the hosts' counters, one upsert row each (saveHostCounters).
func (s *sqlStore) SaveBatches(ctx context.Context, batches []Batch) ([]Outcome, error) {
	out := make([]Outcome, len(batches))
	if len(batches) == 0 {
		return out, nil
	}
	defer s.lockWrites()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("store: save batches: %w", err)
	}
	defer tx.Rollback()
	fail := func(err error) ([]Outcome, error) { return nil, fmt.Errorf("store: save batches: %w", err) }

	order, keys := streamOrder(batches)
	marks, err := s.lockStreamMarks(ctx, tx, keys) // 1
	if err != nil {
		return fail(err)
	}
	moved := judgeBatches(batches, order, marks, out) // 2
	if err := s.saveStreamMarks(ctx, tx, keys, moved, marks); err != nil {
		return fail(err)
	}
	windows, hosts, err := s.saveParts(ctx, tx, batches, out) // 3
	if err != nil {
		return fail(err)
	}
	if err := s.saveWindows(ctx, tx, windows); err != nil { // 4
		return fail(err)
	}
	if err := s.saveHostCounters(ctx, tx, hosts); err != nil { // 5
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("store: save batches: commit: %w", err)
	}
	return out, nil
}

// streamKey names a batch stream: its dedup marks are the streams row of (host, stream).
type streamKey struct{ host, stream string }

// streamOrder returns the batches' indexes sorted by host, stream and seq (ties in arrival order), and
// the distinct streams in that order: the global order the streams' rows are locked in.
func streamOrder(batches []Batch) (order []int, keys []streamKey) {
	order = make([]int, len(batches))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		x, y := &batches[order[a]], &batches[order[b]]
		if x.Host != y.Host {
			return x.Host < y.Host
		}
		if x.StreamID != y.StreamID {
			return x.StreamID < y.StreamID
		}
		return x.Seq < y.Seq
	})
	for _, i := range order {
		k := streamKey{batches[i].Host, batches[i].StreamID}
		if len(keys) == 0 || keys[len(keys)-1] != k {
			keys = append(keys, k)
		}
	}
	return order, keys
}

// lockStreamMarks is step 1, the streams' marks: made if missing, then read and locked in key order
// (FOR UPDATE on PostgreSQL; SQLite has one writer), so that two collectors holding the same replayed
// batch store it once.
func (s *sqlStore) lockStreamMarks(ctx context.Context, tx *sql.Tx, keys []streamKey) (map[streamKey]*seqMarks, error) {
	lock := ""
	if s.dialect == dialectPostgres {
		lock = " FOR UPDATE"
	}
	marks := make(map[streamKey]*seqMarks, len(keys))
	for _, chunk := range chunks(len(keys), 1000) {
		ks := keys[chunk[0]:chunk[1]]
		args := make([]any, 0, 3*len(ks))
		for _, k := range ks {
			args = append(args, k.host, k.stream, int64(0))
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO streams (host, stream_id, hwm) VALUES `+rowsOf(len(ks), 3)+`
			ON CONFLICT (host, stream_id) DO NOTHING`), args...); err != nil {
			return nil, err
		}
		args = args[:0]
		for _, k := range ks {
			args = append(args, k.host, k.stream)
		}
		rows, err := tx.QueryContext(ctx, s.q(`SELECT host, stream_id, hwm, recent FROM streams WHERE (host, stream_id) IN (`+
			rowsOf(len(ks), 2)+`) ORDER BY host, stream_id`+lock), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var k streamKey
			var hwm int64
			var recent []byte
			if err := rows.Scan(&k.host, &k.stream, &hwm, &recent); err != nil {
				rows.Close()
				return nil, err
			}
			m := decodeSeqMarks(hwm, recent)
			marks[k] = &m
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return marks, nil
}

// judgeBatches is the first half of step 2, duplicates and refusals: it sets each batch's outcome (in
// order, by stream and seq) and adds the stored ones to their stream's marks. It returns the streams
// whose marks moved.
func judgeBatches(batches []Batch, order []int, marks map[streamKey]*seqMarks, out []Outcome) map[streamKey]bool {
	moved := map[streamKey]bool{}
	for _, i := range order {
		b := &batches[i]
		k := streamKey{b.Host, b.StreamID}
		m := marks[k]
		if m == nil {
			m = &seqMarks{}
			marks[k] = m
		}
		switch {
		case b.Seq == 0 || b.Seq > MaxSeq:
			out[i] = OutOfOrder
		case b.Seq <= m.hwm && m.stored(b.Seq):
			out[i] = Duplicate // stored before
		case b.Seq <= m.hwm:
			out[i] = OutOfOrder // below the mark and never stored (or too old to tell)
		default:
			m.add(b.Seq)
			moved[k] = true
		}
	}
	return moved
}

// saveStreamMarks is the second half of step 2: the new marks of the streams that moved, in key order.
func (s *sqlStore) saveStreamMarks(ctx context.Context, tx *sql.Tx, keys []streamKey, moved map[streamKey]bool, marks map[streamKey]*seqMarks) error {
	var movedKeys []streamKey
	for _, k := range keys {
		if moved[k] {
			movedKeys = append(movedKeys, k)
		}
	}
	for _, chunk := range chunks(len(movedKeys), 1000) {
		ks := movedKeys[chunk[0]:chunk[1]]
		args := make([]any, 0, 4*len(ks))
		for _, k := range ks {
			args = append(args, k.host, k.stream, int64(marks[k].hwm), marks[k].encode())
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO streams (host, stream_id, hwm, recent) VALUES `+rowsOf(len(ks), 4)+`
			ON CONFLICT (host, stream_id) DO UPDATE SET hwm = excluded.hwm, recent = excluded.recent`), args...); err != nil {
			return err
		}
	}
	return nil
}

// windowAdd is what a group of batches adds to a window.
type windowAdd struct {
	secs           uint32
	flows, dropped int
	bytes          int64
	last           int64
}

// hostAdd is what a group of batches adds to a host's counters.
type hostAdd struct {
	flows, drops, flowDrops uint64
	last                    int64
}

// saveParts is step 3, the parts of the stored batches, in arrival order, each cut to what its window's
// bound still takes (windowTotals reads, and on PostgreSQL locks, what the windows hold). It returns
// what the parts add to their windows and hosts, for steps 4 and 5.
func (s *sqlStore) saveParts(ctx context.Context, tx *sql.Tx, batches []Batch, out []Outcome) (map[windowKey]*windowAdd, map[string]*hostAdd, error) {
	held, err := s.windowTotals(ctx, tx, batches, out)
	if err != nil {
		return nil, nil, err
	}
	windows, hosts, parts := cutParts(batches, out, held)
	for _, chunk := range chunks(len(parts)/7, 500) {
		n := chunk[1] - chunk[0]
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO window_batches
			(host, window_start, stream_id, seq, flow_count, flows, received_at) VALUES `+rowsOf(n, 7)),
			parts[7*chunk[0]:7*chunk[1]]...); err != nil {
			return nil, nil, err
		}
	}
	return windows, hosts, nil
}

// cutParts cuts the stored batches' parts to their windows' bounds given what the windows hold (held,
// updated as parts are taken), sets each part's Dropped and Overflowed, and adds up the windows' and
// hosts' shares. parts holds the window_batches rows to insert, seven values each, in arrival order.
func cutParts(batches []Batch, out []Outcome, held map[windowKey]windowTotal) (windows map[windowKey]*windowAdd, hosts map[string]*hostAdd, parts []any) {
	windows = map[windowKey]*windowAdd{}
	hosts = map[string]*hostAdd{}
	for i := range batches {
		if out[i] != Stored {
			continue
		}
		b := &batches[i]
		at := ms(b.Received)
		h := hosts[b.Host]
		if h == nil {
			h = &hostAdd{}
			hosts[b.Host] = h
		}
		h.drops = satAdd(h.drops, b.Drops)
		h.flowDrops = satAdd(h.flowDrops, b.FlowDrops)
		h.last = max(h.last, at)
		for j := range b.Parts {
			p := &b.Parts[j]
			k := windowKey{b.Host, p.WindowStart}
			w := windows[k]
			if w == nil {
				w = &windowAdd{secs: p.WindowSeconds}
				windows[k] = w
			}
			h.flows = satAdd(h.flows, uint64(max(p.FlowCount, 0)))
			w.last = max(w.last, at)
			t := held[k]
			flows, n := fitPart(p, b.Limits, t)
			p.Dropped, p.Overflowed = p.FlowCount-n, p.FlowCount > n && t.dropped == 0
			t.flows, t.bytes, t.dropped = t.flows+int64(n), t.bytes+int64(len(flows)), t.dropped+int64(p.Dropped)
			held[k] = t
			w.flows += n
			w.bytes += int64(len(flows))
			w.dropped += p.Dropped
			if n > 0 {
				parts = append(parts, b.Host, p.WindowStart, b.StreamID, int64(b.Seq), n, flows, at)
			}
		}
	}
	return windows, hosts, parts
}

// saveWindows is step 4, the windows the parts touch: one upsert row each, in key order. A closed
// window that receives a part opens again.
func (s *sqlStore) saveWindows(ctx context.Context, tx *sql.Tx, windows map[windowKey]*windowAdd) error {
	wkeys := make([]windowKey, 0, len(windows))
	for k := range windows {
		wkeys = append(wkeys, k)
	}
	sort.Slice(wkeys, func(a, b int) bool {
		if wkeys[a].host != wkeys[b].host {
			return wkeys[a].host < wkeys[b].host
		}
		return wkeys[a].start < wkeys[b].start
	})
	for _, chunk := range chunks(len(wkeys), 1000) {
		ks := wkeys[chunk[0]:chunk[1]]
		args := make([]any, 0, 7*len(ks))
		for _, k := range ks {
			w := windows[k]
			args = append(args, k.host, k.start, int64(w.secs), w.last, w.flows, w.bytes, w.dropped)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO windows
			(host, window_start, window_seconds, last_batch_at, flow_count, flow_bytes, flows_dropped, state, end_marked, revision)
			VALUES `+rowsOfWith(len(ks), 7, ", 'open', 0, 0")+`
			ON CONFLICT (host, window_start) DO UPDATE SET
				end_marked = CASE WHEN windows.state = 'open' THEN windows.end_marked ELSE 0 END,
				state = 'open',
				last_batch_at = excluded.last_batch_at,
				flow_count = windows.flow_count + excluded.flow_count,
				flow_bytes = windows.flow_bytes + excluded.flow_bytes,
				flows_dropped = windows.flows_dropped + excluded.flows_dropped`), args...); err != nil {
			return err
		}
	}
	return nil
}

// saveHostCounters is step 5, the hosts' counters: one upsert row each, in name order (a host a batch
// names is made if it is missing). The counters saturate (satSum).
func (s *sqlStore) saveHostCounters(ctx context.Context, tx *sql.Tx, hosts map[string]*hostAdd) error {
	names := make([]string, 0, len(hosts))
	for name := range hosts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, chunk := range chunks(len(names), 1000) {
		ns := names[chunk[0]:chunk[1]]
		args := make([]any, 0, 6*len(ns))
		for _, name := range ns {
			h := hosts[name]
			args = append(args, name, h.last, h.last, int64(h.flows), int64(h.drops), int64(h.flowDrops))
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO hosts (name, first_contact, last_contact, flows_received, drops_reported, flows_dropped)
			VALUES `+rowsOf(len(ns), 6)+`
			ON CONFLICT (name) DO UPDATE SET
				flows_received = `+satSum("hosts.flows_received", "excluded.flows_received")+`,
				drops_reported = `+satSum("hosts.drops_reported", "excluded.drops_reported")+`,
				flows_dropped = `+satSum("hosts.flows_dropped", "excluded.flows_dropped")+`,
				last_contact = CASE WHEN excluded.last_contact > hosts.last_contact THEN excluded.last_contact ELSE hosts.last_contact END`),
			args...); err != nil {
			return err
		}
	}
	return nil
}

// windowTotal is what a window holds so far, for its bound (Batch.Limits).
type windowTotal struct{ flows, bytes, dropped int64 }

// windowTotals reads what the windows of the batches that carry limits hold already. On PostgreSQL the
// rows are locked (in key order, after the streams: the global order SaveBatches keeps), so that two
// collectors cannot both fill the same window's last room; a window neither has made yet can still
// take both their parts, once.
func (s *sqlStore) windowTotals(ctx context.Context, tx *sql.Tx, batches []Batch, out []Outcome) (map[windowKey]windowTotal, error) {
	held := map[windowKey]windowTotal{}
	var keys []windowKey
	for i := range batches {
		if out[i] != Stored || batches[i].Limits == (WindowLimits{}) {
			continue
		}
		for _, p := range batches[i].Parts {
			k := windowKey{batches[i].Host, p.WindowStart}
			if _, ok := held[k]; !ok {
				held[k] = windowTotal{}
				keys = append(keys, k)
			}
		}
	}
	sort.Slice(keys, func(a, b int) bool {
		if keys[a].host != keys[b].host {
			return keys[a].host < keys[b].host
		}
		return keys[a].start < keys[b].start
	})
	lock := ""
	if s.dialect == dialectPostgres {
		lock = " FOR UPDATE"
	}
	for _, c := range chunks(len(keys), 500) {
		rows, err := tx.QueryContext(ctx, s.q(`SELECT host, window_start, flow_count, flow_bytes, flows_dropped FROM windows
			WHERE (host, window_start) IN (`+rowsOf(c[1]-c[0], 2)+`) ORDER BY host, window_start`+lock), keyArgs(keys[c[0]:c[1]])...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var k windowKey
			var t windowTotal
			if err := rows.Scan(&k.host, &k.start, &t.flows, &t.bytes, &t.dropped); err != nil {
				rows.Close()
				return nil, err
			}
			held[k] = t
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return held, nil
}

// fitPart returns the flows of p that fit its window's bound given what the window holds (t), and how
// many they are: all of them when they fit, else the longest prefix that does (with p.FlowEnds) or
// none. Once a window has dropped a flow it takes no more, so that a sample never holds a later
// flow without an earlier one.
func fitPart(p *BatchPart, l WindowLimits, t windowTotal) ([]byte, int) {
	roomFlows, roomBytes := int64(p.FlowCount), int64(len(p.Flows))
	if l.MaxFlows > 0 {
		roomFlows = l.MaxFlows - t.flows
	}
	if l.MaxBytes > 0 {
		roomBytes = l.MaxBytes - t.bytes
	}
	if t.dropped == 0 && int64(p.FlowCount) <= roomFlows && int64(len(p.Flows)) <= roomBytes {
		return p.Flows, p.FlowCount
	}
	if t.dropped > 0 || len(p.FlowEnds) != p.FlowCount || roomFlows <= 0 || roomBytes <= 0 {
		return nil, 0
	}
	n := int(min(roomFlows, int64(p.FlowCount)))
	for n > 0 && int64(p.FlowEnds[n-1]) > roomBytes {
		n--
	}
	if n == 0 {
		return nil, 0
	}
	return p.Flows[:p.FlowEnds[n-1]], n
}
