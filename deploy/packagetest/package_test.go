// Package packagetest builds FlowFleet's .deb and .rpm packages with scripts/package.sh and installs the
// .deb packages on this machine: it checks the files, their owners and modes, the flowfleet user, the
// systemd units (systemd-analyze verify) and the programs' versions, then purges the packages and checks
// that nothing of theirs is left. It needs root (CI runs as root); elsewhere it skips, saying why.
package packagetest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

var packages = []string{"flowfleet-collector", "flowfleet-sensor", "flowctl"}

// want is one installed path: its type and mode and its owner and group names.
type want struct {
	path       string
	dir        bool
	mode       os.FileMode
	owner, grp string
	ownedBy    string // the package that must list it (dpkg -S), "" for shared directories
}

var installed = []want{
	{path: "/usr/bin/flowfleet-collector", mode: 0o755, owner: "root", grp: "root", ownedBy: "flowfleet-collector"},
	{path: "/usr/bin/flowfleet-sensor", mode: 0o755, owner: "root", grp: "root", ownedBy: "flowfleet-sensor"},
	{path: "/usr/bin/flowctl", mode: 0o755, owner: "root", grp: "root", ownedBy: "flowctl"},
	{path: "/usr/lib/systemd/system/flowfleet-collector.service", mode: 0o644, owner: "root", grp: "root", ownedBy: "flowfleet-collector"},
	{path: "/usr/lib/systemd/system/flowfleet-sensor.service", mode: 0o644, owner: "root", grp: "root", ownedBy: "flowfleet-sensor"},
	{path: "/etc/flowfleet", dir: true, mode: 0o750, owner: "root", grp: "flowfleet"},
	{path: "/etc/flowfleet/pki", dir: true, mode: 0o750, owner: "root", grp: "flowfleet"},
	{path: "/etc/flowfleet/collector.yaml", mode: 0o640, owner: "root", grp: "flowfleet", ownedBy: "flowfleet-collector"},
	{path: "/etc/flowfleet/sensor.yaml", mode: 0o640, owner: "root", grp: "flowfleet", ownedBy: "flowfleet-sensor"},
	{path: "/var/lib/flowfleet", dir: true, mode: 0o750, owner: "flowfleet", grp: "flowfleet", ownedBy: "flowfleet-collector"},
	{path: "/var/lib/flowfleet-sensor", dir: true, mode: 0o700, owner: "flowfleet", grp: "flowfleet", ownedBy: "flowfleet-sensor"},
	{path: "/usr/share/doc/flowfleet-collector/LICENSE", mode: 0o644, owner: "root", grp: "root", ownedBy: "flowfleet-collector"},
	{path: "/usr/share/doc/flowfleet-sensor/sensor.md", mode: 0o644, owner: "root", grp: "root", ownedBy: "flowfleet-sensor"},
	{path: "/usr/share/doc/flowfleet-sensor/flowfleet-sensor.help.txt", mode: 0o644, owner: "root", grp: "root", ownedBy: "flowfleet-sensor"},
	{path: "/usr/share/doc/flowctl/flowctl.help.txt", mode: 0o644, owner: "root", grp: "root", ownedBy: "flowctl"},
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "scripts", "package.sh")); err != nil {
		t.Fatalf("repository root not found from the test directory: %v", err)
	}
	return root
}

// buildPackages runs scripts/package.sh into a temporary directory and returns it and the version the
// binaries were stamped with.
func buildPackages(t *testing.T, formats string) (dir, version string) {
	t.Helper()
	root := repoRoot(t)
	// The version first, passed on, so that the packages carry exactly it even if the tree changes.
	v := exec.Command("bash", filepath.Join(root, "scripts", "build.sh"), "--version")
	v.Dir = root
	out, err := v.Output()
	if err != nil {
		t.Fatalf("scripts/build.sh --version: %v", err)
	}
	version = strings.TrimSpace(string(out))
	dir = t.TempDir()
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "package.sh"), "-o", dir, "--formats", formats)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "FLOWFLEET_VERSION="+version)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/package.sh: %v\n%s", err, out)
	}
	return dir, version
}

func onePackage(t *testing.T, dir, name, ext string) string {
	t.Helper()
	// flowctl_1.2.3-1_amd64.deb, flowctl-1.2.3-1.x86_64.rpm; "?" keeps flowfleet-sensor from matching
	// flowfleet-sensor-extra-….
	files, err := filepath.Glob(filepath.Join(dir, name+"?[0-9]*."+ext))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 {
		t.Fatalf("want one %s package %s in %s, found %v", ext, name, dir, files)
	}
	return files[0]
}

func TestDebInstallVerifyPurge(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("SKIP: installing packages with dpkg needs root (CI runs as root); run this test as root")
	}
	for _, tool := range []string{"dpkg", "systemd-analyze", "getent"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: scripts/setup.sh installs it (%v)", tool, err)
		}
	}
	for _, p := range packages {
		if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", p).Output(); err == nil && strings.Contains(string(out), "installed") {
			t.Fatalf("%s is already installed on this machine (%s): this test would purge it; remove it first", p, out)
		}
	}
	dir, version := buildPackages(t, "deb")
	debs := make([]string, 0, len(packages))
	for _, p := range packages {
		debs = append(debs, onePackage(t, dir, p, "deb"))
	}
	t.Cleanup(func() {
		// Purging twice is harmless; this catches a test that failed half way.
		_ = exec.Command("dpkg", append([]string{"--purge"}, packages...)...).Run()
	})
	run(t, "dpkg", append([]string{"-i"}, debs...)...)

	// The user and group, made by preinstall.sh before the files were unpacked.
	u, err := user.Lookup("flowfleet")
	if err != nil {
		t.Fatalf("no flowfleet user after install: %v", err)
	}
	if uid, _ := strconv.Atoi(u.Uid); uid <= 0 || uid >= 1000 {
		t.Errorf("flowfleet uid %s is not a system uid (1..999)", u.Uid)
	}
	if g, err := user.LookupGroup("flowfleet"); err != nil || g.Gid != u.Gid {
		t.Errorf("flowfleet's primary group is not the flowfleet group: %v %v", g, err)
	}
	if pw := run(t, "getent", "passwd", "flowfleet"); !strings.HasSuffix(strings.TrimSpace(pw), ":/usr/sbin/nologin") {
		t.Errorf("flowfleet can log in: %s", pw)
	}

	for _, w := range installed {
		checkPath(t, w)
		if w.ownedBy != "" {
			if out := run(t, "dpkg", "-S", w.path); !strings.HasPrefix(out, w.ownedBy+": ") {
				t.Errorf("%s: dpkg -S says %q, want package %s", w.path, strings.TrimSpace(out), w.ownedBy)
			}
		}
	}
	conffiles := run(t, "dpkg-query", "--control-show", "flowfleet-collector", "conffiles")
	if !strings.Contains(conffiles, "/etc/flowfleet/collector.yaml") {
		t.Errorf("collector.yaml is not a conffile (an upgrade would overwrite an operator's edits): %q", conffiles)
	}

	// The installed units must pass systemd's own check (binaries found, directives known, sandboxing
	// settings valid).
	out, err := exec.Command("systemd-analyze", "verify",
		"/usr/lib/systemd/system/flowfleet-collector.service",
		"/usr/lib/systemd/system/flowfleet-sensor.service").CombinedOutput()
	if err != nil || strings.Contains(string(out), "flowfleet") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	for _, prog := range []string{"flowfleet-collector", "flowfleet-sensor", "flowctl"} {
		got := run(t, "/usr/bin/"+prog, "--version")
		if !strings.Contains(got, " "+version+" ") {
			t.Errorf("%s --version = %q, want version %s", prog, got, version)
		}
	}
	// The services read their packaged config files without error (the certificates are still missing:
	// the error must name them, not the config).
	cmd := exec.Command("/usr/bin/flowfleet-collector", "--config", "/etc/flowfleet/collector.yaml", "--data-dir", t.TempDir())
	out, _ = cmd.CombinedOutput()
	if strings.Contains(string(out), "config /etc/flowfleet") || !strings.Contains(string(out), "/etc/flowfleet/pki/") {
		t.Errorf("collector with the packaged config: want an error about the missing certificates, got:\n%s", out)
	}

	run(t, "dpkg", append([]string{"--purge"}, packages...)...)
	for _, w := range installed {
		if _, err := os.Lstat(w.path); err == nil {
			t.Errorf("%s is left after purge", w.path)
		}
	}
	if _, err := user.Lookup("flowfleet"); err != nil {
		t.Errorf("the flowfleet user was removed on purge (Debian keeps system users): %v", err)
	}
}

func checkPath(t *testing.T, w want) {
	t.Helper()
	fi, err := os.Lstat(w.path)
	if err != nil {
		t.Errorf("missing after install: %v", err)
		return
	}
	if fi.IsDir() != w.dir {
		t.Errorf("%s: directory=%v, want %v", w.path, fi.IsDir(), w.dir)
	}
	if fi.Mode().Perm() != w.mode {
		t.Errorf("%s: mode %04o, want %04o", w.path, fi.Mode().Perm(), w.mode)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if name := userName(st.Uid); name != w.owner {
		t.Errorf("%s: owner %s, want %s", w.path, name, w.owner)
	}
	if name := groupName(st.Gid); name != w.grp {
		t.Errorf("%s: group %s, want %s", w.path, name, w.grp)
	}
}

func userName(uid uint32) string {
	if u, err := user.LookupId(fmt.Sprint(uid)); err == nil {
		return u.Username
	}
	return fmt.Sprint(uid)
}

func groupName(gid uint32) string {
	if g, err := user.LookupGroupId(fmt.Sprint(gid)); err == nil {
		return g.Name
	}
	return fmt.Sprint(gid)
}

// The .rpm packages hold the same files; rpm -qpl lists them without installing (this machine is Debian).
func TestRpmContents(t *testing.T) {
	if _, err := exec.LookPath("rpm"); err != nil {
		t.Fatalf("rpm is missing: scripts/setup.sh installs Debian's rpm package (%v)", err)
	}
	dir, _ := buildPackages(t, "rpm")
	for _, p := range packages {
		rpm := onePackage(t, dir, p, "rpm")
		list := run(t, "rpm", "-qpl", rpm)
		for _, w := range installed {
			if w.ownedBy == p && !strings.Contains(list, w.path+"\n") {
				t.Errorf("%s does not contain %s:\n%s", filepath.Base(rpm), w.path, list)
			}
		}
		if p != "flowctl" {
			scripts := run(t, "rpm", "-qp", "--scripts", rpm)
			if !strings.Contains(scripts, "useradd --system") {
				t.Errorf("%s has no pre-install script creating the flowfleet user:\n%s", filepath.Base(rpm), scripts)
			}
			info := run(t, "rpm", "-qp", "--qf", "[%{FILENAMES} %{FILEMODES:perms} %{FILEGROUPNAME}\n]", rpm)
			if !strings.Contains(info, "/etc/flowfleet/pki drwxr-x--- flowfleet") {
				t.Errorf("%s: /etc/flowfleet/pki is not 0750 group flowfleet:\n%s", filepath.Base(rpm), info)
			}
		}
	}
}
