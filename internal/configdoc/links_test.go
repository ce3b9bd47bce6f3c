package configdoc

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	mdLink   = regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	codePath = regexp.MustCompile("`((?:cmd|internal|pkg|docs|scripts|deploy|bench|proto|examples|certs)/[A-Za-z0-9_./-]+)`")
)

// Every relative link and every repository path in backticks in the Markdown docs names something
// that exists, so the docs never point outside the repository or at what was moved away.
func TestDocsPathsResolve(t *testing.T) {
	root := filepath.Join("..", "..")
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	for _, top := range []string{"README.md", "SECURITY.md", "CHANGELOG.md", "certs/README.md", "bench/README.md"} {
		docs = append(docs, filepath.Join(root, top))
	}
	if len(docs) < 10 {
		t.Fatalf("only %d docs found under %s", len(docs), root)
	}
	bad := 0
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		if strings.Contains(text, "../shared") || strings.Contains(text, "/work/") {
			t.Errorf("%s points outside the repository (../shared or /work/)", doc)
		}
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(doc), target)); err != nil {
				t.Errorf("%s links to %s, which does not exist", doc, target)
				bad++
			}
		}
		for _, m := range codePath.FindAllStringSubmatch(text, -1) {
			p := strings.TrimSuffix(m[1], "/")
			if strings.ContainsAny(p, "*…") || strings.Contains(p, "...") || strings.Contains(p, "<") {
				continue // a pattern, not a path
			}
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				t.Errorf("%s names %s, which does not exist", doc, p)
				bad++
			}
		}
	}
	if bad > 0 {
		t.Logf("%d stale paths", bad)
	}
}
