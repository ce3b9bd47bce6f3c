package store

import (
	"context"
	"database/sql"
	"encoding/base64"
	"fmt"
	"strings"
)

func (s *sqlStore) ContactHost(ctx context.Context, c HostContact) error {
	connected := 0
	if c.Connected {
		connected = 1
	}
	err := s.smallWrite(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO hosts (name, stream_id, software_version, window_seconds,
		first_contact, last_contact, connected, collector, drops_reported)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET
			stream_id = CASE WHEN excluded.stream_id <> '' THEN excluded.stream_id ELSE hosts.stream_id END,
			software_version = CASE WHEN excluded.software_version <> '' THEN excluded.software_version ELSE hosts.software_version END,
			window_seconds = CASE WHEN excluded.window_seconds > 0 THEN excluded.window_seconds ELSE hosts.window_seconds END,
			last_contact = excluded.last_contact,
			connected = excluded.connected,
			collector = excluded.collector,
			drops_reported = `+satSum("hosts.drops_reported", "excluded.drops_reported")),
			c.Name, c.StreamID, c.SoftwareVersion, int64(c.WindowSeconds), ms(c.At), ms(c.At), connected, c.Collector,
			int64(min(c.Drops, MaxSeq)))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: contact host: %w", err)
	}
	return nil
}

func (s *sqlStore) ListHosts(ctx context.Context, f HostFilter) ([]Host, string, error) {
	size := f.PageSize
	if size <= 0 {
		size = DefaultHostPageSize
	}
	if size > MaxPageSize {
		size = MaxPageSize
	}
	var where []string
	var args []any
	switch {
	case f.ConnectedOnly && f.Collector != "":
		where = append(where, "(connected = 1 OR collector = ?)")
		args = append(args, f.Collector)
	case f.ConnectedOnly:
		where = append(where, "connected = 1")
	}
	if f.PageToken != "" {
		after, err := decodeHostToken(f.PageToken)
		if err != nil {
			return nil, "", err
		}
		where = append(where, "name > ?")
		args = append(args, after)
	}
	query := `SELECT name, stream_id, software_version, window_seconds, first_contact, last_contact, connected,
		collector, flows_received, drops_reported, flows_dropped FROM hosts`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY name LIMIT ?"
	args = append(args, size+1)
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, "", fmt.Errorf("store: list hosts: %w", err)
	}
	defer rows.Close()
	var out []Host
	for rows.Next() {
		var h Host
		var secs, first, last, connected, flows, drops, flowDrops int64
		if err := rows.Scan(&h.Name, &h.StreamID, &h.SoftwareVersion, &secs, &first, &last, &connected, &h.Collector, &flows, &drops, &flowDrops); err != nil {
			return nil, "", fmt.Errorf("store: list hosts: %w", err)
		}
		h.WindowSeconds = uint32(secs)
		h.FirstContact, h.LastContact = fromMS(first), fromMS(last)
		h.Connected = connected != 0
		h.FlowsReceived, h.DropsReported, h.FlowsDropped = uint64(max(flows, 0)), uint64(max(drops, 0)), uint64(max(flowDrops, 0))
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("store: list hosts: %w", err)
	}
	next := ""
	if len(out) > size {
		out = out[:size]
		next = HostPageToken(out[len(out)-1].Name)
	}
	return out, next, nil
}

// HostPageToken is the ListHosts page token of the page that starts after host name: the same scheme
// as ListSamples' tokens (URL-safe base64 of the last key returned), marked so that neither is taken
// for the other.
func HostPageToken(name string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(hostTokenPrefix + name))
}

const hostTokenPrefix = "host:"

func decodeHostToken(t string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(t)
	name := strings.TrimPrefix(string(b), hostTokenPrefix)
	if err != nil || !strings.HasPrefix(string(b), hostTokenPrefix) || HostPageToken(name) != t || !tokenKey(name, 253) {
		return "", ErrBadToken
	}
	return strings.TrimPrefix(string(b), hostTokenPrefix), nil
}
