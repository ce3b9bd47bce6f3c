package flow

// AnswerTable is the insertion-ordered map from a DNS name (ending in ".") to the answers seen for it
// (section 4): what naming draws its passive names from (R-NAME-1).
//
// It is bounded: past MaxEntries answers further ones are dropped and counted in Dropped.
type AnswerTable struct {
	index   map[string]int
	names   []string
	answers [][]Answer
	total   int

	// MaxEntries bounds the number of answers held (0 means DefaultMaxAnswers).
	MaxEntries int
	// Dropped counts answers refused because the table was full.
	Dropped int
}

// Answer is one DNS answer: the time of the response and the answer text (an address, normalised per
// R-OUT-7 when decoded from packets).
type Answer struct {
	Time   float64
	Answer string
}

// DefaultMaxAnswers is the default bound of an AnswerTable.
const DefaultMaxAnswers = 1 << 21

// NewAnswerTable returns an empty table.
func NewAnswerTable() *AnswerTable {
	return &AnswerTable{index: make(map[string]int)}
}

// Len returns the number of names registered.
func (t *AnswerTable) Len() int { return len(t.names) }

// Answers returns the number of answers held.
func (t *AnswerTable) Answers() int { return t.total }

// Register adds name with no answers if it is new, keeping its position otherwise.
func (t *AnswerTable) Register(name string) int {
	if i, ok := t.index[name]; ok {
		return i
	}
	if len(t.names) >= t.limit() {
		return -1
	}
	t.index[name] = len(t.names)
	t.names = append(t.names, name)
	t.answers = append(t.answers, nil)
	return len(t.names) - 1
}

// Add files an answer under name, registering the name first if needed.
func (t *AnswerTable) Add(name string, at float64, answer string) {
	if t.total >= t.limit() {
		t.Dropped++
		return
	}
	i := t.Register(name)
	if i < 0 {
		t.Dropped++
		return
	}
	t.answers[i] = append(t.answers[i], Answer{Time: at, Answer: answer})
	t.total++
}

// Reset empties the answers of name, keeping its position, or appends it when new (the NS quirk of
// R-DNS-5 step 5).
func (t *AnswerTable) Reset(name string) {
	i := t.Register(name)
	if i < 0 {
		return
	}
	t.total -= len(t.answers[i])
	t.answers[i] = nil
}

// Each calls fn for every answer in table order: names in insertion order, answers in arrival order.
func (t *AnswerTable) Each(fn func(name string, a Answer)) {
	for i, n := range t.names {
		for _, a := range t.answers[i] {
			fn(n, a)
		}
	}
}

func (t *AnswerTable) limit() int {
	if t.MaxEntries > 0 {
		return t.MaxEntries
	}
	return DefaultMaxAnswers
}
