package interflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/flowfleet/flowfleet/internal/pynum"
)

// kind is the type of a decoded JSON value.
type kind uint8

const (
	kNull kind = iota
	kBool
	kNum
	kStr
	kArr
	kObj
)

// jval is a decoded JSON value that keeps what Python's json.loads keeps: object members in document
// order (a repeated name keeps the position of its first occurrence and the value of its last, as a
// Python dict does) and number literals as written.
type jval struct {
	k   kind
	b   bool
	s   string // string value, or number literal
	arr []jval
	obj []member
}

type member struct {
	key string
	val jval
}

func (v *jval) container() bool { return v.k == kArr || v.k == kObj }

// get returns the value of a top-level member of an object, or nil.
func (v *jval) get(key string) *jval {
	if v.k != kObj {
		return nil
	}
	for i := range v.obj {
		if v.obj[i].key == key {
			return &v.obj[i].val
		}
	}
	return nil
}

// MaxDepth bounds the nesting of arrays and objects in one line. CPython's decoder fails on its own near a
// depth of 1000 (recursion limit); FlowFleet refuses deeper documents earlier.
const MaxDepth = 512

// maxIntDigitsJSON is CPython's limit on the digits of an integer literal (3.11); json.loads raises on longer
// ones, which aborts the conversion.
const maxIntDigitsJSON = 4300

// decodeLine decodes one line that must hold exactly one JSON value (R-IF-1, R-ZEEK-3).
func decodeLine(line []byte) (jval, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	v, err := decodeValue(dec, 0)
	if err != nil {
		if err == io.EOF {
			err = errors.New("no JSON value")
		}
		return jval{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("extra data after the JSON value")
		}
		return jval{}, err
	}
	return v, nil
}

func decodeValue(dec *json.Decoder, depth int) (jval, error) {
	tok, err := dec.Token()
	if err != nil {
		return jval{}, err
	}
	switch t := tok.(type) {
	case nil:
		return jval{k: kNull}, nil
	case bool:
		return jval{k: kBool, b: t}, nil
	case string:
		return jval{k: kStr, s: t}, nil
	case json.Number:
		lit := string(t)
		if !strings.ContainsAny(lit, ".eE") && len(strings.TrimPrefix(lit, "-")) > maxIntDigitsJSON {
			return jval{}, fmt.Errorf("integer literal longer than %d digits", maxIntDigitsJSON)
		}
		return jval{k: kNum, s: lit}, nil
	case json.Delim:
		if depth >= MaxDepth {
			return jval{}, fmt.Errorf("nesting deeper than %d", MaxDepth)
		}
		switch t {
		case '[':
			v := jval{k: kArr}
			for dec.More() {
				e, err := decodeValue(dec, depth+1)
				if err != nil {
					return jval{}, err
				}
				v.arr = append(v.arr, e)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return jval{}, err
			}
			return v, nil
		case '{':
			v := jval{k: kObj}
			var index map[string]int
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return jval{}, err
				}
				key, ok := kt.(string)
				if !ok {
					return jval{}, errors.New("object key is not a string")
				}
				e, err := decodeValue(dec, depth+1)
				if err != nil {
					return jval{}, err
				}
				// A repeated name: first position, last value (Python dict semantics).
				pos := -1
				if index != nil {
					if i, ok := index[key]; ok {
						pos = i
					}
				} else {
					for i := range v.obj {
						if v.obj[i].key == key {
							pos = i
							break
						}
					}
				}
				if pos >= 0 {
					v.obj[pos].val = e
					continue
				}
				v.obj = append(v.obj, member{key: key, val: e})
				if index == nil && len(v.obj) > 16 {
					index = make(map[string]int, 2*len(v.obj))
					for i := range v.obj {
						index[v.obj[i].key] = i
					}
				} else if index != nil {
					index[key] = len(v.obj) - 1
				}
			}
			if _, err := dec.Token(); err != nil { // '}'
				return jval{}, err
			}
			return v, nil
		}
	}
	return jval{}, fmt.Errorf("unexpected token %v", tok)
}

// pyText is the text Python's str() (or an f-string) gives to a decoded JSON value ("py-text", section 0
// of docs/bayseflow.md); containers are written as Python's repr of a dict or list.
func pyText(v *jval) string {
	switch v.k {
	case kStr:
		return v.s
	case kArr, kObj:
		var b strings.Builder
		writeRepr(&b, v)
		return b.String()
	}
	return scalarRepr(v)
}

// scalarRepr is repr() (equal to str()) of a non-string scalar.
func scalarRepr(v *jval) string {
	switch v.k {
	case kNull:
		return "None"
	case kBool:
		if v.b {
			return "True"
		}
		return "False"
	case kNum:
		if v.s == "-0" {
			return "0" // an integer literal: Python's int has no negative zero
		}
		return pynum.NumberText(v.s)
	}
	return ""
}

// writeRepr writes Python's repr of a value.
func writeRepr(b *strings.Builder, v *jval) {
	switch v.k {
	case kStr:
		pynum.WriteStrRepr(b, v.s)
	case kArr:
		b.WriteByte('[')
		for i := range v.arr {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, &v.arr[i])
		}
		b.WriteByte(']')
	case kObj:
		b.WriteByte('{')
		for i := range v.obj {
			if i > 0 {
				b.WriteString(", ")
			}
			pynum.WriteStrRepr(b, v.obj[i].key)
			b.WriteString(": ")
			writeRepr(b, &v.obj[i].val)
		}
		b.WriteByte('}')
	default:
		b.WriteString(scalarRepr(v))
	}
}

// Python's membership and subscript operators on decoded values, as the reference's DNS code applies
// them to whatever the record holds. errType stands for the TypeError or KeyError Python raises.
var errType = errors.New("type error")

// pyIn is Python's `key in container`.
func pyIn(key string, c *jval) (bool, error) {
	switch c.k {
	case kObj:
		return c.get(key) != nil, nil
	case kArr:
		for i := range c.arr {
			if c.arr[i].k == kStr && c.arr[i].s == key {
				return true, nil
			}
		}
		return false, nil
	case kStr:
		return strings.Contains(c.s, key), nil
	}
	return false, errType
}

// pyIndex is Python's container[key] for a string key: only a dict holding the key has a value.
func pyIndex(c *jval, key string) (*jval, error) {
	if v := c.get(key); v != nil {
		return v, nil
	}
	return nil, errType
}
