package flow

// candidate is one (t, name) pair of R-NAME-1.
type candidate struct {
	t    float64
	name string
}

// Name names every flow's destination (R-NAME-1, R-NAME-2) from the answer table, then updates the
// long-term cache (R-CACHE-3). active reports whether an address text is in ACTIVE. cache may be nil.
// Naming runs only when there is at least one flow.
func Name(flows []Flow, answers *AnswerTable, active func(string) bool, cache *NameCache) {
	if len(flows) == 0 {
		return
	}
	n := newNamer(answers, active)
	for i := range flows {
		n.name(&flows[i], cache)
	}
	if cache != nil {
		n.updateCache(cache)
	}
}

// namer holds the (t, name) candidates of R-NAME-1 by answer address. Once built it is only read:
// flows may be named on several goroutines at once.
type namer struct {
	lists map[string][]candidate
	order []string // the addresses in order of their first answer
}

func newNamer(answers *AnswerTable, active func(string) bool) *namer {
	n := &namer{lists: make(map[string][]candidate)}
	if answers != nil {
		answers.Each(func(name string, a Answer) {
			if !active(a.Answer) {
				return
			}
			l, ok := n.lists[a.Answer]
			if !ok {
				n.order = append(n.order, a.Answer)
			}
			n.lists[a.Answer] = append(l, candidate{t: a.Time, name: name[:max(len(name)-1, 0)]})
		})
	}
	for _, l := range n.lists {
		sortStable(l, func(x, y candidate) bool { return x.t < y.t })
	}
	return n
}

// name applies R-NAME-2 to one flow.
func (n *namer) name(f *Flow, cache *NameCache) { nameFlow(f, n.lists[f.DstAddr], cache) }

// updateCache applies R-CACHE-3, after every flow was named.
func (n *namer) updateCache(cache *NameCache) {
	for _, x := range n.order {
		l := n.lists[x]
		same := true
		for _, c := range l[1:] {
			if c.name != l[0].name {
				same = false
				break
			}
		}
		if same {
			cache.Set(x, l[0].name)
		}
	}
}

// nameFlow applies R-NAME-2 to one flow.
func nameFlow(f *Flow, list []candidate, cache *NameCache) {
	if f.Name != "" { // step 1
		f.NameSource = SourceSession
		return
	}
	for i := len(list) - 1; i >= 0; i-- { // step 2
		if list[i].t <= f.First {
			f.Name, f.NameSource = list[i].name, SourcePassive
			return
		}
	}
	if cache != nil { // step 3
		if n, ok := cache.Lookup(f.DstAddr); ok {
			f.Name, f.NameSource = n, SourceCache
			return
		}
	}
	if len(list) > 0 { // step 4 (quirk)
		f.Name, f.NameSource = list[0].name, SourcePassive
		return
	}
	f.Name, f.NameSource = f.DstAddr, SourceOriginal // step 5
}

// ActiveDestinations is ACTIVE (R-NAME-1) for flow logs, which have no frames of their own: the
// non-local flow destinations.
func ActiveDestinations(flows []Flow) func(string) bool {
	set := make(map[string]bool)
	for i := range flows {
		if a, ok := ParseAddr(flows[i].DstAddr); ok && !IsLocal(a) {
			set[flows[i].DstAddr] = true
		}
	}
	return func(s string) bool { return set[s] }
}
