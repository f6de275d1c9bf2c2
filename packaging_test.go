package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/agent"
	"github.com/metricsrouter/router/registry"
)

// The Debian package (make deb = packaging/build-deb.sh) is built into a
// temporary directory, listed and inspected with dpkg-deb, extracted into a
// throw-away root, and checked there: every installed configuration passes
// `router -check` with the installed binary, the units pass
// `systemd-analyze verify` and lintian reports no error (both when
// installed). Without dpkg-deb the test is skipped, or fails when CI=true.

// debTimeout bounds each command the packaging tests run.
const debTimeout = 5 * time.Minute

// debTool returns the path of a tool the test cannot do without: skipped
// when it is missing, failed when CI=true.
func debTool(t *testing.T, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := name + " not found: " + hint
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// debRun runs a command with a deadline and returns its standard output; it
// fails the test with both outputs when the command fails.
func debRun(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	out, errOut, err := debRunErr(t, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func debRunErr(t *testing.T, env []string, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), debTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = env
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// debianArch is what build-deb.sh calls the Go architecture.
func debianArch(t *testing.T) string {
	goarch := os.Getenv("GOARCH")
	if goarch == "" {
		goarch = strings.TrimSpace(debRun(t, nil, "go", "env", "GOARCH"))
	}
	switch goarch {
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	case "ppc64le":
		return "ppc64el"
	}
	return goarch
}

// TestPackageVersion: git describe output becomes a Debian version that
// sorts right, and the architecture is Debian's name for GOARCH.
func TestPackageVersion(t *testing.T) {
	for _, tc := range []struct{ version, goarch, want string }{
		{"v1.2.3", "amd64", "1.2.3-1 amd64"},
		{"v1.2.3-rc1", "arm64", "1.2.3~rc1-1 arm64"},
		{"v1.2.3-4-gabc1234", "386", "1.2.3+git4.gabc1234-1 i386"},
		{"v1.2.3-rc.1-12-g0123abc", "arm", "1.2.3~rc.1+git12.g0123abc-1 armhf"},
		{"nightly", "ppc64le", "0.0.0~nightly-1 ppc64el"},
	} {
		t.Run(tc.version+"/"+tc.goarch, func(t *testing.T) {
			env := append(os.Environ(), "VERSION="+tc.version, "GOARCH="+tc.goarch)
			if got := strings.TrimSpace(debRun(t, env, "packaging/build-deb.sh", "--print")); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("git", func(t *testing.T) {
		env := slices.DeleteFunc(os.Environ(), func(s string) bool { return strings.HasPrefix(s, "VERSION=") })
		got := strings.TrimSpace(debRun(t, env, "packaging/build-deb.sh", "--print"))
		if !regexp.MustCompile(`^[0-9][0-9A-Za-z.+~]*-1 [a-z0-9]+$`).MatchString(got) {
			t.Errorf("version from git: %q is not a Debian version and architecture", got)
		}
		// this checkout: with no tag, the VERSION file's release, as a pre-release
		if _, _, err := debRunErr(t, nil, "git", "describe", "--tags"); err == nil {
			return
		}
		file, err := os.ReadFile("VERSION")
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.TrimSpace(string(file)) + "~git"; !strings.HasPrefix(got, want) {
			t.Errorf("untagged checkout: version %q, want %s...", got, want)
		}
	})
}

// TestPackageVersionFile: without a tag the version comes from the VERSION
// file (the release being prepared), as a pre-release of it when built from
// git; a tag wins; VERSION= in the environment wins over both. Each case runs
// build-deb.sh --print in a throw-away tree holding a copy of the script.
func TestPackageVersionFile(t *testing.T) {
	debTool(t, "git", "apt-get install git")
	script, err := os.ReadFile("packaging/build-deb.sh")
	if err != nil {
		t.Fatal(err)
	}
	const date = "2026-01-02T03:04:05+0000" // the commits' date: 20260102
	home := t.TempDir()
	// git and the script see only the throw-away tree: no repository above
	// it, no configuration of the user's
	env := slices.DeleteFunc(os.Environ(), func(s string) bool {
		return strings.HasPrefix(s, "VERSION=") || strings.HasPrefix(s, "GIT_") || strings.HasPrefix(s, "HOME=")
	})
	env = append(env, "GOARCH=amd64", "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_DATE="+date, "GIT_COMMITTER_DATE="+date,
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
	tree := func(t *testing.T, version string) (dir string, git func(args ...string) string) {
		t.Helper()
		dir = t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "packaging"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "packaging/build-deb.sh"), script, 0o755); err != nil {
			t.Fatal(err)
		}
		if version != "" {
			if err := os.WriteFile(filepath.Join(dir, "VERSION"), []byte(version), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		env := append(env, "GIT_CEILING_DIRECTORIES="+filepath.Dir(dir))
		return dir, func(args ...string) string {
			return strings.TrimSpace(debRun(t, env, "git", append([]string{"-C", dir}, args...)...))
		}
	}
	versionOf := func(t *testing.T, dir string, extra ...string) string {
		t.Helper()
		e := append(slices.Clone(env), "GIT_CEILING_DIRECTORIES="+filepath.Dir(dir))
		return strings.TrimSpace(debRun(t, append(e, extra...), filepath.Join(dir, "packaging/build-deb.sh"), "--print"))
	}
	commit := func(git func(...string) string, msg string) string {
		git("add", "-A")
		git("commit", "-q", "--allow-empty", "-m", msg)
		return git("rev-parse", "--short", "HEAD")
	}

	t.Run("no git", func(t *testing.T) {
		dir, _ := tree(t, "0.1.0\n")
		if got := versionOf(t, dir); got != "0.1.0-1 amd64" {
			t.Errorf("got %q, want the VERSION file's 0.1.0-1 amd64", got)
		}
		if got := versionOf(t, dir, "VERSION=2.0.0"); got != "2.0.0-1 amd64" {
			t.Errorf("VERSION=2.0.0: got %q", got)
		}
	})
	t.Run("no git, no VERSION file", func(t *testing.T) {
		dir, _ := tree(t, "")
		if got := versionOf(t, dir); got != "0.0.0~dev-1 amd64" {
			t.Errorf("got %q, want 0.0.0~dev-1 amd64", got)
		}
	})
	t.Run("git", func(t *testing.T) {
		dir, git := tree(t, "\n 0.3.0-rc1 \n")
		git("init", "-q")
		h := commit(git, "one")
		if got, want := versionOf(t, dir), "0.3.0~rc1~git20260102."+h+"-1 amd64"; got != want {
			t.Errorf("untagged: got %q, want %q", got, want)
		}
		git("tag", "v0.2.0")
		if got := versionOf(t, dir); got != "0.2.0-1 amd64" {
			t.Errorf("tagged v0.2.0 (the tag wins over VERSION 0.3.0-rc1): got %q", got)
		}
		h = commit(git, "two")
		if got, want := versionOf(t, dir), "0.2.0+git1.g"+h+"-1 amd64"; got != want {
			t.Errorf("a commit after the tag: got %q, want %q", got, want)
		}
		if got := versionOf(t, dir, "VERSION=9.9.9"); got != "9.9.9-1 amd64" {
			t.Errorf("VERSION=9.9.9: got %q", got)
		}
	})
	t.Run("git, no VERSION file", func(t *testing.T) {
		dir, git := tree(t, "")
		git("init", "-q")
		h := commit(git, "one")
		if got, want := versionOf(t, dir), "0.0.0~git20260102."+h+"-1 amd64"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
}

// TestVersionFile: VERSION names the release CHANGELOG.md is preparing: a
// plain MAJOR.MINOR.PATCH above every released heading while there is an
// "## Unreleased" section, else the newest heading's version.
func TestVersionFile(t *testing.T) {
	data, err := os.ReadFile("VERSION")
	if err != nil {
		t.Fatal(err)
	}
	semver := regexp.MustCompile(`^(\d+)\.(\d+)\.(\d+)$`)
	parse := func(v string) [3]int {
		m := semver.FindStringSubmatch(v)
		var n [3]int
		for i := range n {
			n[i], _ = strconv.Atoi(m[i+1])
		}
		return n
	}
	version := strings.TrimSuffix(string(data), "\n")
	if !semver.MatchString(version) {
		t.Fatalf("VERSION is %q, want MAJOR.MINOR.PATCH and a newline", data)
	}
	changelog, err := os.ReadFile("CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	unreleased := regexp.MustCompile(`(?m)^## Unreleased\s*$`).Match(changelog)
	var released []string
	for _, m := range regexp.MustCompile(`(?m)^## \[?v?(\d+\.\d+\.\d+)\b`).FindAllSubmatch(changelog, -1) {
		released = append(released, string(m[1]))
	}
	switch {
	case unreleased:
		for _, r := range released {
			v, rv := parse(version), parse(r)
			if slices.Compare(v[:], rv[:]) <= 0 {
				t.Errorf("VERSION %s is not above %s, released in CHANGELOG.md, while it has an Unreleased section", version, r)
			}
		}
	case len(released) == 0:
		t.Error("CHANGELOG.md has neither an Unreleased section nor a version heading")
	case released[0] != version:
		t.Errorf("VERSION %s, but CHANGELOG.md's newest release is %s and nothing is unreleased", version, released[0])
	}
}

// TestPackageLicense: LICENSE is the Apache License 2.0, and the package's
// copyright file (packaging/copyright.sh) says so for the router's own files.
func TestPackageLicense(t *testing.T) {
	lic, err := os.ReadFile("LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"Apache License", "Version 2.0, January 2004", "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION", "END OF TERMS AND CONDITIONS"} {
		if !bytes.Contains(lic, []byte(w)) {
			t.Errorf("LICENSE lacks %q: not the full Apache License 2.0", w)
		}
	}
	// Debian's copy (package base-files) is the text the copyright file points to
	if debian, err := os.ReadFile("/usr/share/common-licenses/Apache-2.0"); err == nil && !bytes.Equal(lic, debian) {
		t.Error("LICENSE differs from /usr/share/common-licenses/Apache-2.0")
	}
	copyright := debRun(t, nil, "packaging/copyright.sh")
	checkCopyright(t, copyright)
}

// checkCopyright: the copyright file gives the router's files (Files: *, the
// first paragraph) the Apache-2.0 license of LICENSE, and that license a
// stand-alone paragraph pointing to Debian's copy of the text.
func checkCopyright(t *testing.T, copyright string) {
	t.Helper()
	paras := strings.Split(copyright, "\n\n")
	if len(paras) < 2 || paras[1] != "Files: *\nCopyright: the router authors\nLicense: Apache-2.0" {
		t.Errorf("the router's paragraph of the copyright file is not Apache-2.0:\n%s", copyright)
	}
	if !slices.Contains(paras, "License: Apache-2.0\n On Debian systems the full text of the Apache-2.0 license is in\n /usr/share/common-licenses/Apache-2.0.") {
		t.Errorf("the copyright file has no stand-alone Apache-2.0 paragraph:\n%s", copyright)
	}
}

// TestPackageManPage: packaging/router.1 names every flag of `router -h`
// and every subcommand of this binary.
func TestPackageManPage(t *testing.T) {
	page, err := os.ReadFile("packaging/router.1")
	if err != nil {
		t.Fatal(err)
	}
	// troff spells '-' as "\-"
	man := strings.ReplaceAll(string(page), `\-`, "-")
	var help bytes.Buffer
	agent.Run(t.Context(), []string{"-h"}, &help, &help)
	for _, m := range regexp.MustCompile(`(?m)^  (-[a-z-]+)`).FindAllStringSubmatch(help.String(), -1) {
		if !strings.Contains(man, m[1]) {
			t.Errorf("router.1 does not document the flag %s", m[1])
		}
	}
	for _, c := range registry.Default.Commands() {
		if !strings.Contains(man, "router "+c.Name) {
			t.Errorf("router.1 does not document the command router %s", c.Name)
		}
	}
}

// debEntry is one line of `dpkg-deb -c`.
type debEntry struct{ mode, owner string }

func TestPackageDeb(t *testing.T) {
	skipShort(t)
	debTool(t, "dpkg-deb", "apt-get install dpkg")
	start := time.Now()
	out := t.TempDir()
	built := debRun(t, nil, "packaging/build-deb.sh", out)
	lines := strings.Split(strings.TrimSpace(built), "\n")
	deb := lines[len(lines)-1]
	fi, err := os.Stat(deb)
	if err != nil {
		t.Fatalf("build-deb.sh printed %q: %v", deb, err)
	}
	t.Logf("built %s (%d bytes) in %v", filepath.Base(deb), fi.Size(), time.Since(start).Round(time.Millisecond))

	// control fields
	control := debRun(t, nil, "dpkg-deb", "-f", deb)
	field := func(name string) string {
		m := regexp.MustCompile(`(?m)^` + name + `: (.*)$`).FindStringSubmatch(control)
		if m == nil {
			t.Fatalf("control has no %s:\n%s", name, control)
		}
		return m[1]
	}
	version := field("Version")
	if field("Package") != "router" {
		t.Errorf("Package: %q", field("Package"))
	}
	if got, want := field("Architecture"), debianArch(t); got != want {
		t.Errorf("Architecture: %q, want %q", got, want)
	}
	if !regexp.MustCompile(`^[0-9][0-9A-Za-z.+~]*-[0-9A-Za-z.+~]+$`).MatchString(version) {
		t.Errorf("Version %q is not a Debian version with a revision", version)
	}
	if !strings.Contains(field("Depends"), "adduser") {
		t.Errorf("Depends: %q, want adduser (postinst creates the router user)", field("Depends"))
	}

	// the file list, with modes and owners
	listing := debRun(t, nil, "dpkg-deb", "-c", deb)
	t.Logf("dpkg-deb -c:\n%s", listing)
	files := map[string]debEntry{}
	for _, l := range strings.Split(strings.TrimSpace(listing), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			t.Fatalf("odd dpkg-deb -c line %q", l)
		}
		files[strings.TrimPrefix(f[5], ".")] = debEntry{mode: f[0], owner: f[1]}
	}
	want := map[string]string{
		"/usr/bin/router":                           "-rwxr-xr-x",
		"/etc/router/router.toml":                   "-rw-r--r--",
		"/lib/systemd/system/router.service":        "-rw-r--r--",
		"/lib/systemd/system/router@.service":       "-rw-r--r--",
		"/var/lib/router/":                          "drwxr-xr-x",
		"/usr/share/doc/router/copyright":           "-rw-r--r--",
		"/usr/share/doc/router/changelog.gz":        "-rw-r--r--",
		"/usr/share/doc/router/changelog.Debian.gz": "-rw-r--r--",
		"/usr/share/man/man1/router.1.gz":           "-rw-r--r--",
	}
	examples, _ := filepath.Glob("etc/*.toml")
	keys, _ := filepath.Glob("etc/keys/*")
	if len(examples) == 0 || len(keys) == 0 {
		t.Fatal("no etc/*.toml or etc/keys/*: run the test from the repository root")
	}
	for _, f := range examples {
		want["/etc/router/examples/"+filepath.Base(f)] = "-rw-r--r--"
	}
	for _, f := range keys {
		want["/etc/router/examples/keys/"+filepath.Base(f)] = "-rw-r--r--"
	}
	docs, _ := filepath.Glob("docs/*.md") // the reference README.md points to
	if len(docs) == 0 {
		t.Fatal("no docs/*.md")
	}
	want["/usr/share/doc/router/README.md.gz"] = "-rw-r--r--"
	want["/usr/share/doc/router/docs/"] = "drwxr-xr-x"
	for _, f := range docs {
		want["/usr/share/doc/router/docs/"+filepath.Base(f)+".gz"] = "-rw-r--r--"
	}
	for p, mode := range want {
		e, ok := files[p]
		switch {
		case !ok:
			t.Errorf("%s is not in the package", p)
		case e.mode != mode:
			t.Errorf("%s: mode %s, want %s", p, e.mode, mode)
		}
	}
	var etc []string
	for p, e := range files {
		if e.owner != "root/root" {
			t.Errorf("%s: owner %s, want root/root", p, e.owner)
		}
		if e.mode[5] == 'w' || e.mode[8] == 'w' {
			t.Errorf("%s: mode %s is writable by group or others", p, e.mode)
		}
		if strings.HasPrefix(p, "/etc/") && !strings.HasSuffix(p, "/") {
			etc = append(etc, p)
		}
	}

	// every file in /etc is a conffile
	conffiles := strings.Fields(debRun(t, nil, "dpkg-deb", "-I", deb, "conffiles"))
	slices.Sort(etc)
	slices.Sort(conffiles)
	if !slices.Equal(etc, conffiles) {
		t.Errorf("conffiles %q, want every file in /etc: %q", conffiles, etc)
	}

	// maintainer scripts: present, executable, valid sh
	ctrl := t.TempDir()
	debRun(t, nil, "dpkg-deb", "-e", deb, ctrl)
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		p := filepath.Join(ctrl, s)
		fi, err := os.Stat(p)
		if err != nil {
			t.Errorf("no %s: %v", s, err)
			continue
		}
		if fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: mode %v, want 0755", s, fi.Mode().Perm())
		}
		debRun(t, nil, "sh", "-n", p)
	}
	if postinst, _ := os.ReadFile(filepath.Join(ctrl, "postinst")); !bytes.Contains(postinst, []byte("adduser --system --group --no-create-home --home \"$STATE\"")) {
		t.Error("postinst does not create the router system user")
	}

	// the installed tree
	root := t.TempDir()
	debRun(t, nil, "dpkg-deb", "-x", deb, root)
	if c, err := os.ReadFile(filepath.Join(root, "usr/share/doc/router/copyright")); err != nil {
		t.Error(err)
	} else {
		checkCopyright(t, string(c))
	}
	bin := filepath.Join(root, "usr/bin/router")
	upstream, _, _ := strings.Cut(version, "-")
	if v := debRun(t, nil, bin, "-version"); !strings.HasPrefix(v, "router "+upstream+" ") {
		t.Errorf("router -version = %q, want the package's upstream version of %s", strings.SplitN(v, "\n", 2)[0], version)
	}
	t.Run("check", func(t *testing.T) {
		configs, _ := filepath.Glob(filepath.Join(root, "etc/router/*.toml"))
		more, _ := filepath.Glob(filepath.Join(root, "etc/router/examples/*.toml"))
		configs = append(configs, more...)
		if len(configs) != 1+len(examples) {
			t.Fatalf("%d configurations installed, want %d", len(configs), 1+len(examples))
		}
		// a clean environment: the ${VAR:-default}s apply, as under systemd
		env := []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
		absDefault := regexp.MustCompile(`\$\{[A-Z0-9_]+:-(/[^}]*)\}`)
		for _, c := range configs {
			name := strings.TrimPrefix(c, root)
			out, errOut, err := debRunErr(t, env, bin, "-config", c, "-check")
			if err != nil || !strings.Contains(out, ": ok (") {
				t.Errorf("router -config %s -check: %v\n%s%s", name, err, out, errOut)
				continue
			}
			t.Logf("%s", strings.TrimSpace(strings.ReplaceAll(out, root, "")))
			text, _ := os.ReadFile(c)
			for _, m := range absDefault.FindAllSubmatch(text, -1) {
				p := string(m[1])
				switch {
				case strings.HasPrefix(p, "/etc/router/"):
					if _, err := os.Stat(filepath.Join(root, p)); err != nil {
						t.Errorf("%s: default %s is not in the package", name, p)
					}
				case !strings.HasPrefix(p, "/var/lib/router/"):
					t.Errorf("%s: default %s is outside /etc/router and /var/lib/router (ProtectSystem=strict)", name, p)
				}
			}
		}
	})

	t.Run("units", func(t *testing.T) {
		unitDir := filepath.Join(root, "lib/systemd/system")
		for _, u := range []string{"router.service", "router@.service"} {
			text, err := os.ReadFile(filepath.Join(unitDir, u))
			if err != nil {
				t.Fatal(err)
			}
			config := "/etc/router/router.toml"
			if u == "router@.service" {
				config = "/etc/router/%i.toml"
			}
			for _, line := range []string{
				"User=router",
				"ExecStartPre=/usr/bin/router -config " + config + " -check",
				"ExecStart=/usr/bin/router -config " + config,
				"ExecReload=/bin/kill -HUP $MAINPID",
				"KillSignal=SIGTERM",
				"TimeoutStopSec=45s",
				"Restart=on-failure",
				"LimitNOFILE=65536",
				"NoNewPrivileges=yes",
				"ProtectSystem=strict",
				"ProtectHome=yes",
				"PrivateTmp=yes",
				"ReadWritePaths=/var/lib/router",
				"AmbientCapabilities=CAP_NET_BIND_SERVICE",
				"CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
				"WantedBy=multi-user.target",
			} {
				if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + `$`).Match(text) {
					t.Errorf("%s has no line %q", u, line)
				}
			}
		}
		sa, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Skip("systemd-analyze not installed: the units were not verified")
		}
		// verify checks that ExecStart's binary exists: point the units at
		// the extracted one, and man: at the extracted man page
		dir := t.TempDir()
		for src, dst := range map[string]string{"router.service": "router.service", "router@.service": "router@test.service"} {
			text, err := os.ReadFile(filepath.Join(unitDir, src))
			if err != nil {
				t.Fatal(err)
			}
			text = bytes.ReplaceAll(text, []byte("/usr/bin/router"), []byte(bin))
			if err := os.WriteFile(filepath.Join(dir, dst), text, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		env := append(os.Environ(), "MANPATH="+filepath.Join(root, "usr/share/man"), "SYSTEMD_LOG_COLOR=0")
		args := []string{"verify"}
		if _, err := exec.LookPath("man"); err != nil {
			t.Log("man not installed: Documentation=man:router(1) not checked")
			args = append(args, "--man=no")
		}
		args = append(args, filepath.Join(dir, "router.service"), filepath.Join(dir, "router@test.service"))
		out, errOut, err := debRunErr(t, env, sa, args...)
		for _, l := range strings.Split(strings.TrimSpace(out+errOut), "\n") {
			if strings.Contains(l, "router") {
				t.Errorf("systemd-analyze verify: %s", l)
			} else if l != "" {
				t.Logf("systemd-analyze verify (another unit on this host): %s", l)
			}
		}
		if err != nil {
			t.Errorf("systemd-analyze verify: %v", err)
		}
		if out, _, err := debRunErr(t, nil, sa, "security", "--offline=yes", filepath.Join(dir, "router.service")); err == nil {
			if m := regexp.MustCompile(`Overall exposure level for [^:]*: (.*)`).FindStringSubmatch(out); m != nil {
				t.Logf("systemd-analyze security: %s", m[1])
			}
		}
	})

	t.Run("lintian", func(t *testing.T) {
		lintian, err := exec.LookPath("lintian")
		if err != nil {
			t.Skip("lintian not installed (apt-get install lintian)")
		}
		out, errOut, err := debRunErr(t, nil, lintian, "--display-info", "--pedantic", "--show-overrides", "--tag-display-limit", "0", deb)
		// exit status 2 means tags at the fail-on level, overridden ones
		// included (--show-overrides); the E: lines below decide
		var exit *exec.ExitError
		if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 2) {
			t.Fatalf("lintian did not run: %v\n%s%s", err, out, errOut)
		}
		t.Logf("lintian --pedantic --show-overrides:\n%s", out)
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "E: ") {
				t.Errorf("lintian error: %s", l)
			}
		}
	})
}
