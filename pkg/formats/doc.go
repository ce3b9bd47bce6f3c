// Package formats is the home of FlowFleet's file formats: the BayseFlow output (package bayseflow) and
// one reader per input kind — packet captures (pcapfile), Zeek logs (zeek), Interflow JSON (interflow)
// and NetFlow v9 CSV (netflow) — plus the conversion driver that ties a reader to the flow engine
// (convert). Rule ids in comments refer to docs/bayseflow.md.
package formats
