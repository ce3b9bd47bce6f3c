package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeCommands returns the shell commands of the README's "The two commands" section.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []string
	section, inCode := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			section = strings.TrimSpace(line) == "## The two commands"
		case section && strings.HasPrefix(line, "```"):
			inCode = !inCode
		case section && inCode && strings.TrimSpace(line) != "":
			cmds = append(cmds, strings.TrimSpace(line))
		}
	}
	return cmds
}

// The README holds exactly two commands: the first sets up and runs the demo, the second runs the tests,
// and CI runs that same second command.
func TestREADMEHasTheTwoCommands(t *testing.T) {
	cmds := readmeCommands(t)
	if len(cmds) != 2 {
		t.Fatalf("README's two-commands section has %d commands, want 2: %q", len(cmds), cmds)
	}
	ci, err := os.ReadFile(filepath.Join(repoRoot(t), ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	test := strings.TrimPrefix(cmds[1], "sudo ")
	if !strings.Contains(string(ci), test) {
		t.Errorf(".ci/run does not run the README's test command %q", test)
	}
}

// The README's first command, run as the README says, brings up a collector and two sensors and lists a
// sample per host, with destinations named from the DNS answers the test hosts received.
func TestREADMEFirstCommandRunsTheFleet(t *testing.T) {
	needRoot(t)
	cmds := readmeCommands(t)
	if len(cmds) < 1 {
		t.Fatal("no command in the README")
	}
	root := repoRoot(t)
	fields := strings.Fields(strings.TrimPrefix(cmds[0], "sudo "))
	work := t.TempDir()
	cmd := exec.Command(fields[0], fields[1:]...)
	cmd.Dir = root
	// The demo writes the user's default client config: here, one of the test's own.
	cmd.Env = append(os.Environ(), "FLOWFLEET_DEMO_WINDOW=10", "FLOWFLEET_DEMO_DIR="+work, "XDG_CONFIG_HOME="+filepath.Join(work, "xdg"))
	out, err := cmd.CombinedOutput()
	t.Cleanup(func() {
		down := exec.Command(fields[0], "down")
		down.Dir = root
		down.Env = cmd.Env
		_ = down.Run()
	})
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmds[0], err, tail(out, 4000))
	}
	text := string(out)
	list := section(text, "flowctl samples list", "==>")
	for _, host := range []string{"host-a", "host-b"} {
		if !regexp.MustCompile(`(?m)^` + host + `_\d+\s+` + host + `\s+\S+\s+[1-9]\d*\s+written`).MatchString(list) {
			t.Errorf("no written sample with flows for %s in:\n%s", host, list)
		}
	}
	flows := section(text, "flowctl samples flows", "The fleet is running")
	if !regexp.MustCompile(`web\.demo\.test\s+passive\s+ICMP`).MatchString(flows) {
		t.Errorf("the ping to web.demo.test is not named from the DNS answer (passive):\n%s", flows)
	}
	if !regexp.MustCompile(`(web|api)\.demo\.test:443\s+session\s+TCP`).MatchString(flows) {
		t.Errorf("no TLS flow named from its SNI (session):\n%s", flows)
	}
	// After the demo, a query needs no flags: the demo wrote the default client config.
	if !strings.Contains(text, "Query it:  "+work+"/bin/flowctl samples list ") {
		t.Errorf("the demo does not offer a bare flowctl samples list:\n%s", tail(out, 600))
	}
	if _, err := os.Stat(filepath.Join(work, "xdg", "flowfleet", "flowctl.yaml")); err != nil {
		t.Errorf("the demo wrote no default client config: %v", err)
	}
	for _, want := range []string{"sudo scripts/demo.sh down", work + "/logs", work + "/data/samples"} {
		if !strings.Contains(text, want) {
			t.Errorf("the demo does not tell where %q is", want)
		}
	}
}

// section returns the text after the line containing start, up to the next line containing end.
func section(text, start, end string) string {
	i := strings.Index(text, start)
	if i < 0 {
		return ""
	}
	rest := text[i+len(start):]
	if j := strings.Index(rest, end); j >= 0 {
		return rest[:j]
	}
	return rest
}
