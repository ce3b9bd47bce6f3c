package logx

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// logMethods are the slog.Logger methods that take key-value pairs, and the index of their first pair.
var logMethods = map[string]int{
	"Debug": 1, "Info": 1, "Warn": 1, "Error": 1,
	"DebugContext": 2, "InfoContext": 2, "WarnContext": 2, "ErrorContext": 2,
	"Log": 3, "With": 0,
}

// attrFuncs are the slog functions that make one attribute from a key.
var attrFuncs = map[string]bool{"String": true, "Int": true, "Int64": true, "Uint64": true, "Float64": true,
	"Bool": true, "Time": true, "Duration": true, "Any": true, "Group": true}

// keyPattern is the spelling of every key: lower case words joined by "_".
var keyPattern = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// logKeys reads the Go files (tests aside) under roots and returns every literal log key with where it
// is used. A call counts as a log call when it is a method named as a slog.Logger method that logs
// (logMethods) on anything but an imported package other than slog; its pairs are read until an
// argument that is neither a string literal key nor a slog attribute (a spread slice, say).
func logKeys(t *testing.T, roots ...string) (map[string][]string, int) {
	t.Helper()
	keys := map[string][]string{}
	files := 0
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				return err
			}
			files++
			packages := map[string]bool{}
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				name := p[strings.LastIndex(p, "/")+1:]
				if imp.Name != nil {
					name = imp.Name.Name
				}
				packages[name] = true
			}
			add := func(lit *ast.BasicLit) {
				if k, err := strconv.Unquote(lit.Value); err == nil {
					pos := fset.Position(lit.Pos())
					keys[k] = append(keys[k], pos.Filename+":"+strconv.Itoa(pos.Line))
				}
			}
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "slog" && attrFuncs[sel.Sel.Name] && len(call.Args) > 0 {
					if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						add(lit)
					}
					return true
				}
				first, ok := logMethods[sel.Sel.Name]
				if !ok || call.Ellipsis.IsValid() && len(call.Args) == first+1 {
					return true
				}
				if x, ok := sel.X.(*ast.Ident); ok && packages[x.Name] && x.Name != "slog" {
					return true // status.Error, http.Error: a package's function, not a logger
				}
				for i := first; i < len(call.Args); i++ {
					switch a := call.Args[i].(type) {
					case *ast.BasicLit:
						if a.Kind != token.STRING {
							return true
						}
						add(a)
						i++ // its value
					case *ast.CallExpr: // an attribute, read above
					default:
						return true
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return keys, files
}

// Every log key under internal/ and cmd/ is one of the documented keys (keys.go), spelled one way.
func TestLogKeysAreDocumented(t *testing.T) {
	keys, files := logKeys(t, "../../internal", "../../cmd")
	if files < 100 || len(keys) < 20 {
		t.Fatalf("read %d Go files, found %d keys: the walk missed the tree", files, len(keys))
	}
	var unknown []string
	for k, where := range keys {
		if !slices.Contains(Keys, k) {
			unknown = append(unknown, k)
			t.Errorf("log key %q (%s) is not in logx.Keys: use a documented key, or add it there with its meaning", k, strings.Join(where, ", "))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		t.Logf("unknown keys: %q", unknown)
	}
	seen := map[string]bool{}
	for _, k := range Keys {
		if !keyPattern.MatchString(k) || seen[k] || k == "error" {
			t.Errorf("documented key %q: want lower_snake_case, listed once, and never \"error\" (errors go under %q)", k, KeyErr)
		}
		seen[k] = true
	}
}

// The walk finds the keys of every form of log call, and ignores what is not one.
func TestLogKeysFindsEveryForm(t *testing.T) {
	dir := t.TempDir()
	src := `package x

import (
	"log/slog"
	"net/http"

	"google.golang.org/grpc/status"
)

func f(log *slog.Logger, args []any) {
	log.Info("m", "alpha", 1, slog.String("beta", "x"), "gamma", 2)
	log.Log(nil, slog.LevelInfo, "m", "delta", 1)
	log.With("epsilon", 1).Warn("m", args...)
	log.Error("m", args...)
	_ = status.Error(0, "not_a_key")
	http.Error(nil, "nor_this", 500)
}
`
	if err := writeFile(filepath.Join(dir, "x.go"), src); err != nil {
		t.Fatal(err)
	}
	keys, _ := logKeys(t, dir)
	var got []string
	for k := range keys {
		got = append(got, k)
	}
	slices.Sort(got)
	if want := []string{"alpha", "beta", "delta", "epsilon", "gamma"}; !slices.Equal(got, want) {
		t.Fatalf("keys %q, want %q", got, want)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }
