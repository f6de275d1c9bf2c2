package file

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// newFile returns an initialised output writing to files.
func newFile(t testing.TB, files ...string) (*File, *plugintest.Metrics) {
	t.Helper()
	p, ok := registry.Default.Lookup(registry.Outputs, "file")
	if !ok {
		t.Fatal("outputs.file is not registered")
	}
	o := p.New().(*File)
	o.Files = files
	env, m := plugintest.Env(t, "outputs.file")
	if err := o.Init(env); err != nil {
		t.Fatal(err)
	}
	return o, m
}

func connect(t testing.TB, o *File) {
	t.Helper()
	if err := o.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
}

func read(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFactoryAndSample(t *testing.T) {
	p, ok := registry.Default.Lookup(registry.Outputs, "file")
	if !ok {
		t.Fatal("outputs.file is not registered")
	}
	o := p.New().(*File)
	if len(o.Files) != 1 || o.Files[0] != "stdout" || o.FileMode != "0644" || o.IP || o.stdout != os.Stdout || o.stderr != os.Stderr {
		t.Fatalf("factory: %+v; want files [stdout], file_mode 0644, ip false, on the process's streams", o)
	}
	var s File
	if err := plugintest.DecodeSample(p.Sample, "outputs", "file", &s); err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.Files, ",") != "stdout" || s.IP || s.FileMode != "0644" {
		t.Fatalf("sample: files %q, ip %v, file_mode %q; want the factory's defaults", s.Files, s.IP, s.FileMode)
	}
	env, _ := plugintest.Env(t, "outputs.file")
	if err := s.Init(env); err != nil {
		t.Fatalf("the sample does not pass Init: %v", err)
	}
	if s.mode != 0o644 {
		t.Fatalf("mode %o, want 644", s.mode)
	}
}

func TestInit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		mode  string
		want  string // "" = ok, else a part of the error
		perm  os.FileMode
	}{
		{"defaults", []string{"/x/a.log"}, "0644", "", 0o644},
		{"no leading zero", []string{"/x/a.log"}, "600", "", 0o600},
		{"0o prefix", []string{"/x/a.log"}, "0o640", "", 0o640},
		{"several and streams", []string{"/x/a.log", "/x/b.log", "stdout", "stderr"}, "0644", "", 0o644},
		{"no files", nil, "0644", "files: at least one", 0},
		{"empty path", []string{"/x/a.log", ""}, "0644", "files: empty path", 0},
		{"twice", []string{"/x/a.log", "/x/a.log"}, "0644", `files: "/x/a.log" listed twice`, 0},
		{"stdout twice", []string{"stdout", "stdout"}, "0644", `"stdout" listed twice`, 0},
		{"not octal", []string{"/x/a.log"}, "0648", `file_mode "0648"`, 0},
		{"too large", []string{"/x/a.log"}, "01777", `file_mode "01777"`, 0},
		{"empty mode", []string{"/x/a.log"}, "", `file_mode ""`, 0},
		{"symbolic", []string{"/x/a.log"}, "rw-r--r--", `file_mode "rw-r--r--"`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &File{Files: tc.files, FileMode: tc.mode}
			env, _ := plugintest.Env(t, "outputs.file")
			err := o.Init(env)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Init = %v, want ok", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Init = %v, want an error containing %q", err, tc.want)
			case tc.want == "" && o.mode != tc.perm:
				t.Fatalf("mode %o, want %o", o.mode, tc.perm)
			}
		})
	}
}

func TestInterfaces(t *testing.T) {
	o := &File{Files: []string{"/var/log/a.log"}, IP: true}
	if o.Destination() != "/var/log/a.log" || strings.Join(o.Destinations(), "|") != "/var/log/a.log" || !o.PrefixPeer() {
		t.Fatalf("one file: Destination %q, Destinations %q, PrefixPeer %v", o.Destination(), o.Destinations(), o.PrefixPeer())
	}
	o = &File{Files: []string{"/var/log/a.log", "stdout"}}
	if o.Destination() != "/var/log/a.log,stdout" || strings.Join(o.Destinations(), "|") != "/var/log/a.log|stdout" || o.PrefixPeer() {
		t.Fatalf("two files: Destination %q, Destinations %q, PrefixPeer %v", o.Destination(), o.Destinations(), o.PrefixPeer())
	}
}

// TestWrite: exact bytes in every file, appended batch after batch, in a file
// that existed (kept) and in new ones (created with file_mode), and on
// stdout and stderr.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	existing, created, sub := filepath.Join(dir, "old.log"), filepath.Join(dir, "new.log"), filepath.Join(dir, "d", "x.log")
	if err := os.WriteFile(existing, []byte("kept 1 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Dir(sub), 0o755); err != nil {
		t.Fatal(err)
	}
	stdout, stderr := filepath.Join(dir, "stdout"), filepath.Join(dir, "stderr")
	var std [2]*os.File
	for i, p := range []string{stdout, stderr} {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		std[i] = f
	}
	o := &File{Files: []string{existing, created, sub, "stdout", "stderr"}, FileMode: "0640", stdout: std[0], stderr: std[1]}
	env, m := plugintest.Env(t, "outputs.file")
	if err := o.Init(env); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0o022)
	connect(t, o)
	syscall.Umask(old)

	first := plugintest.Batch(t,
		"a.b;dc=eu  1.50\t1700000000", // untouched: byte for byte
		"statsd:hits,host=a:+3|c|@0.5|#env:prod,bare|x-ext",
		"graphite:renamed 2 1700000001",
	)
	first[2].SetPath([]byte("new.name")) // modified: its rendering
	second := plugintest.Batch(t, "c.d 4 1700000002")
	for _, b := range []metric.Batch{first, nil, second} {
		if err := o.Write(t.Context(), b); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	want := "a.b;dc=eu  1.50\t1700000000\nhits,host=a:+3|c|@0.5|#env:prod,bare|x-ext\nnew.name 2 1700000001\nc.d 4 1700000002\n"
	for _, p := range []string{created, sub, stdout, stderr} {
		if got := read(t, p); got != want {
			t.Errorf("%s = %q, want %q", filepath.Base(p), got, want)
		}
	}
	if got := read(t, existing); got != "kept 1 1\n"+want {
		t.Errorf("existing file = %q, want its line then ours", got)
	}
	for p, perm := range map[string]os.FileMode{existing: 0o600, created: 0o640, sub: 0o640} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != perm {
			t.Errorf("%s: mode %v (%v), want %v", filepath.Base(p), fi.Mode().Perm(), err, perm)
		}
	}
	if got, want := m.Get("bytes_written_total"), uint64(5*len(want)); got != want {
		t.Errorf("bytes_written_total = %d, want %d", got, want)
	}
	if err := o.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// the streams stay open
	if _, err := std[0].WriteString("after\n"); err != nil {
		t.Fatalf("Close closed stdout: %v", err)
	}
	if err := o.Write(t.Context(), second); !errors.Is(err, registry.ErrNotConnected) {
		t.Fatalf("Write after Close = %v, want ErrNotConnected", err)
	}
}

// TestWriteBeforeConnect: the runner connects first; a Write without files
// asks it to.
func TestWriteBeforeConnect(t *testing.T) {
	o, _ := newFile(t, filepath.Join(t.TempDir(), "a.log"))
	if err := o.Write(t.Context(), plugintest.Batch(t, "a 1 1")); !errors.Is(err, registry.ErrNotConnected) {
		t.Fatalf("Write = %v, want ErrNotConnected", err)
	}
}

func TestWriteCancelled(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.log")
	o, _ := newFile(t, p)
	connect(t, o)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := o.Write(ctx, plugintest.Batch(t, "a 1 1")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write = %v, want context.Canceled", err)
	}
	if got := read(t, p); got != "" {
		t.Fatalf("file = %q after a cancelled Write, want empty", got)
	}
}

// TestConnectErrors: a file that cannot be opened is an error naming it,
// and no file stays open.
func TestConnectErrors(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	locked := filepath.Join(dir, "locked")
	if err := os.Mkdir(locked, 0o555); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path string
		want       error
	}{
		{"missing directory", filepath.Join(dir, "nope", "a.log"), fs.ErrNotExist},
		{"under a file", filepath.Join(plain, "a.log"), syscall.ENOTDIR},
		{"a directory", locked, syscall.EISDIR},
	}
	if os.Geteuid() != 0 { // root writes anywhere
		cases = append(cases, struct {
			name, path string
			want       error
		}{"directory not writable", filepath.Join(locked, "a.log"), fs.ErrPermission})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			good := filepath.Join(t.TempDir(), "good.log")
			o, _ := newFile(t, good, tc.path)
			err := o.Connect(t.Context())
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.path) {
				t.Fatalf("Connect = %v, want %v naming %s", err, tc.want, tc.path)
			}
			if o.sinks != nil {
				t.Fatalf("files left open after a failed Connect: %v", o.sinks)
			}
			if err := o.Write(t.Context(), plugintest.Batch(t, "a 1 1")); !errors.Is(err, registry.ErrNotConnected) {
				t.Fatalf("Write = %v, want ErrNotConnected", err)
			}
		})
	}
}

// TestWriteError: a device that refuses the write (/dev/full: ENOSPC) is an
// error asking the runner to open the files again; the other file got the
// batch.
func TestWriteError(t *testing.T) {
	good := filepath.Join(t.TempDir(), "good.log")
	o, _ := newFile(t, good, "/dev/full")
	connect(t, o)
	err := o.Write(t.Context(), plugintest.Batch(t, "a 1 1", "b 2 2"))
	var pw *registry.PartialWriteError
	if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, registry.ErrNotConnected) || errors.As(err, &pw) || !strings.Contains(err.Error(), "/dev/full") {
		t.Fatalf("Write = %v, want ENOSPC naming /dev/full, wrapping ErrNotConnected, no partial write", err)
	}
	if got := read(t, good); got != "a 1 1\nb 2 2\n" {
		t.Fatalf("good file = %q", got)
	}
	// the runner's reconnect opens both again
	if err := o.Connect(t.Context()); err != nil {
		t.Fatalf("Connect after a write error: %v", err)
	}
}

// writeLimited writes b to o with the file size limit (RLIMIT_FSIZE) at
// limit bytes, as a full disk would cut the write, and restores the limit.
func writeLimited(t *testing.T, o *File, b metric.Batch, limit uint64) error {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		t.Fatal(err)
	}
	small := lim
	small.Cur = limit
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &small); err != nil {
		t.Fatal(err)
	}
	err := o.Write(t.Context(), b)
	if e := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); e != nil {
		t.Fatal(e)
	}
	return err
}

// TestPartialWrite: a write cut short (the file size limit, as a full disk
// would) reports the metrics written whole, removes the cut line, and the
// retry of the rest completes the file exactly.
func TestPartialWrite(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.log")
	o, _ := newFile(t, p)
	connect(t, o)
	b := plugintest.Batch(t, "aaaa 1 1", "bbbb 2 2", "cccc 3 3", "dddd 4 4") // 9 bytes each
	// the limit lets two lines and 4 bytes of the third through
	err := writeLimited(t, o, b, 22)
	var pw *registry.PartialWriteError
	if !errors.As(err, &pw) || pw.Written != 2 || pw.Refused != 0 || !errors.Is(err, syscall.EFBIG) || !errors.Is(err, registry.ErrNotConnected) {
		t.Fatalf("Write = %#v, want a PartialWriteError of 2 metrics wrapping EFBIG and ErrNotConnected", err)
	}
	if got := read(t, p); got != "aaaa 1 1\nbbbb 2 2\n" {
		t.Fatalf("after the cut write the file is %q, want the two whole lines", got)
	}
	if err := o.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := o.Write(t.Context(), b[pw.Written:]); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got, want := read(t, p), "aaaa 1 1\nbbbb 2 2\ncccc 3 3\ndddd 4 4\n"; got != want {
		t.Fatalf("file = %q, want %q", got, want)
	}
}

// TestPartialWriteSeveralFiles: Written is what every file has whole.
func TestPartialWriteSeveralFiles(t *testing.T) {
	dir := t.TempDir()
	big, small := filepath.Join(dir, "big.log"), filepath.Join(dir, "small.log")
	// small starts 13 bytes in: the limit cuts it one line earlier
	if err := os.WriteFile(small, []byte("previous 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o, _ := newFile(t, big, small)
	connect(t, o)
	b := plugintest.Batch(t, "aaaa 1 1", "bbbb 2 2", "cccc 3 3", "dddd 4 4")
	err := writeLimited(t, o, b, 30) // big: 3 lines and 3 bytes; small: 13 + 1 line and 8 bytes
	var pw *registry.PartialWriteError
	if !errors.As(err, &pw) || pw.Written != 1 || !strings.Contains(err.Error(), big) {
		t.Fatalf("Write = %v, want a PartialWriteError of 1 metric naming the first failing file", err)
	}
	if got := read(t, big); got != "aaaa 1 1\nbbbb 2 2\ncccc 3 3\n" {
		t.Fatalf("big = %q", got)
	}
	if got := read(t, small); got != "previous 0 0\naaaa 1 1\n" {
		t.Fatalf("small = %q", got)
	}
}

// TestReopen: logrotate renames the file, Reopen, and the next lines land
// in a new file at the path; nothing lost or written twice.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "metrics.log")
	o, m := newFile(t, p, "stdout")
	out, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	o.stdout = out
	connect(t, o)
	if err := o.Write(t.Context(), plugintest.Batch(t, "a 1 1", "b 2 2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	// until Reopen the renamed file gets the lines (as with carbon-c-relay)
	if err := o.Write(t.Context(), plugintest.Batch(t, "c 3 3")); err != nil {
		t.Fatal(err)
	}
	if err := o.Reopen(); err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	if err := o.Write(t.Context(), plugintest.Batch(t, "d 4 4", "e 5 5")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p+".1"); got != "a 1 1\nb 2 2\nc 3 3\n" {
		t.Errorf("rotated file = %q", got)
	}
	if got := read(t, p); got != "d 4 4\ne 5 5\n" {
		t.Errorf("new file = %q", got)
	}
	if got := read(t, out.Name()); got != "a 1 1\nb 2 2\nc 3 3\nd 4 4\ne 5 5\n" {
		t.Errorf("stdout = %q (not reopened, never closed)", got)
	}
	if got := m.Get("reopens_total"); got != 1 {
		t.Errorf("reopens_total = %d, want 1 (stdout is not reopened)", got)
	}
	// before Connect and after Close there is nothing to reopen
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := o.Reopen(); err != nil {
		t.Fatalf("Reopen after Close: %v", err)
	}
}

// TestReopenFails: a file that cannot be opened again keeps the one it had.
func TestReopenFails(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "logs")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(sub, "metrics.log")
	o, m := newFile(t, p)
	connect(t, o)
	if err := o.Write(t.Context(), plugintest.Batch(t, "a 1 1")); err != nil {
		t.Fatal(err)
	}
	// the directory moves away: the path cannot be created again
	if err := os.Rename(sub, sub+".old"); err != nil {
		t.Fatal(err)
	}
	if err := o.Reopen(); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), p) {
		t.Fatalf("Reopen = %v, want ErrNotExist naming %s", err, p)
	}
	if err := o.Write(t.Context(), plugintest.Batch(t, "b 2 2")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(sub+".old", "metrics.log")); got != "a 1 1\nb 2 2\n" {
		t.Fatalf("file = %q, want both lines in the file kept open", got)
	}
	if got := m.Get("reopen_errors_total"); got != 1 {
		t.Fatalf("reopen_errors_total = %d, want 1", got)
	}
}

// TestReopenConcurrent: rotations while a writer appends; every batch
// lands exactly once, whole, in order across the rotated files.
func TestReopenConcurrent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "metrics.log")
	o, _ := newFile(t, p)
	connect(t, o)
	const batches, perBatch, rotations = 400, 25, 20
	var want strings.Builder
	bs := make([]metric.Batch, batches)
	for i := range bs {
		lines := make([]string, perBatch)
		for j := range lines {
			lines[j] = "m." + strconv.Itoa(i) + "." + strconv.Itoa(j) + " 1 1"
			want.WriteString(lines[j] + "\n")
		}
		bs[i] = plugintest.Batch(t, lines...)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	written := make(chan int, batches)
	go func() {
		defer wg.Done()
		for i, b := range bs {
			if err := o.Write(t.Context(), b); err != nil {
				t.Error(err)
				return
			}
			written <- i
		}
	}()
	for r := 1; r <= rotations; r++ {
		<-written // rotate between batches at varying points
		if err := os.Rename(p, p+"."+strconv.Itoa(r)); err != nil {
			t.Fatal(err)
		}
		if err := o.Reopen(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	var got strings.Builder
	for r := 1; r <= rotations; r++ {
		s := read(t, p+"."+strconv.Itoa(r))
		if len(s) > 0 && (!strings.HasSuffix(s, " 1 1\n") || strings.Count(s, "\n")%perBatch != 0) {
			t.Fatalf("rotated file %d holds a part of a batch: %q", r, s)
		}
		got.WriteString(s)
	}
	got.WriteString(read(t, p))
	if got.String() != want.String() {
		t.Fatalf("the rotated files and the current one hold %d bytes, want %d; not every line exactly once in order", got.Len(), want.Len())
	}
}

func benchBatch(b *testing.B, n int) metric.Batch {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = "bench.file.servers.host" + strconv.Itoa(i%100) + ".cpu.load." + strconv.Itoa(i) + " 1.25 1700000000"
	}
	return plugintest.Batch(b, lines...)
}

// BenchmarkWrite: 5000-metric batches appended to a real file (truncated
// every 200 batches, as a rotation would), and to /dev/null (the output's
// own cost).
func BenchmarkWrite(b *testing.B) {
	batch := benchBatch(b, 5000)
	for _, tc := range []struct{ name, path string }{
		{"file", filepath.Join(b.TempDir(), "bench.log")},
		{"devnull", os.DevNull},
	} {
		b.Run(tc.name, func(b *testing.B) {
			o, _ := newFile(b, tc.path)
			connect(b, o)
			if err := o.Write(b.Context(), batch); err != nil { // sizes the buffer
				b.Fatal(err)
			}
			size := 0
			for i := range batch {
				size += len(batch[i].Line()) + 1
			}
			b.ReportAllocs()
			b.SetBytes(int64(size))
			n := 0
			for b.Loop() {
				if err := o.Write(b.Context(), batch); err != nil {
					b.Fatal(err)
				}
				if n++; n%200 == 0 && tc.name == "file" {
					if err := os.Truncate(tc.path, 0); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
