package all_test

import (
	"flag"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/metricsrouter/router/registry"
)

var update = flag.Bool("update", false, "rewrite the generated parts of "+pluginsDoc)

const (
	// pluginsDoc is the plugin reference: the options table (TestOptionsTable)
	// and a section per plugin with its sample (TestPluginsKeepToTheContract).
	pluginsDoc = "../../docs/plugins.md"
	optBegin   = "<!-- BEGIN options: generated from the plugins' sample.toml by `go test ./plugins/all -run TestOptionsTable -update` -->"
	optEnd     = "<!-- END options -->"
)

// structKeys lists the TOML keys of a struct type: embedded structs inline,
// nested struct fields as "table.key".
func structKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := strings.Split(f.Tag.Get("toml"), ",")[0]
		if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
			keys = append(keys, structKeys(f.Type, prefix)...)
			continue
		}
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Type.PkgPath() != "" && f.Type.Name() != "Duration" {
			keys = append(keys, structKeys(f.Type, prefix+tag+".")...)
			continue
		}
		keys = append(keys, prefix+tag)
	}
	return keys
}

var keyLine = regexp.MustCompile(`^\s*#?\s*([a-z_][a-z0-9_]*)\s*=\s*(.*)$`)

// sampleDoc finds key in a sample: its value and the "##" lines above it.
func sampleDoc(sample, key string) (value, doc string, ok bool) {
	table := ""
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		table, key = key[:i], key[i+1:]
	}
	lines := strings.Split(sample, "\n")
	inTable := table == ""
	for i, l := range lines {
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "[") && !strings.HasPrefix(t, "[[") {
			inTable = strings.HasSuffix(strings.Trim(t, "[] "), "."+table) && table != ""
			continue
		}
		if strings.HasPrefix(t, "[[") {
			inTable = table == "" && !strings.Contains(t, ".to.")
			continue
		}
		if !inTable {
			continue
		}
		m := keyLine.FindStringSubmatch(l)
		if m == nil || m[1] != key || strings.HasPrefix(t, "##") {
			continue
		}
		var d []string
		for j := i - 1; j >= 0; j-- {
			p := strings.TrimSpace(lines[j])
			if !strings.HasPrefix(p, "##") {
				break
			}
			d = append([]string{strings.TrimSpace(strings.TrimPrefix(p, "##"))}, d...)
		}
		v := m[2]
		if k := strings.Index(v, " #"); k >= 0 && !strings.Contains(v[:k], `"`) || k >= 0 && strings.Count(v[:k], `"`)%2 == 0 {
			v = strings.TrimSpace(v[:k])
		}
		return v, strings.Join(d, " "), true
	}
	return "", "", false
}

func optionsTable(t *testing.T) string {
	var b strings.Builder
	b.WriteString("| plugin | key | sample value | what |\n|---|---|---|---|\n")
	for _, p := range registry.Default.All() {
		full := string(p.Kind) + "." + p.Name
		for _, k := range structKeys(reflect.TypeOf(p.New()).Elem(), "") {
			v, d, ok := sampleDoc(p.Sample, k)
			if !ok {
				t.Errorf("%s: key %q is not in its sample.toml", full, k)
				continue
			}
			fmt.Fprintf(&b, "| `%s` | `%s` | `%s` | %s |\n", full, k, strings.ReplaceAll(v, "|", `\|`), strings.ReplaceAll(d, "|", `\|`))
		}
	}
	return b.String()
}

// TestOptionsTable: docs/plugins.md's table of every plugin option is the one
// the samples give (so it cannot drift); -update rewrites it.
func TestOptionsTable(t *testing.T) {
	want := optBegin + "\n" + optionsTable(t) + optEnd
	raw, err := os.ReadFile(pluginsDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i, j := strings.Index(doc, optBegin), strings.Index(doc, optEnd)
	if i < 0 || j < i {
		t.Fatalf("%s has no %q ... %q section", pluginsDoc, optBegin, optEnd)
	}
	got := doc[i : j+len(optEnd)]
	if got == want {
		return
	}
	if *update {
		if err := os.WriteFile(pluginsDoc, []byte(doc[:i]+want+doc[j+len(optEnd):]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatal("docs/plugins.md's options table differs from the samples: run go test ./plugins/all -run TestOptionsTable -update")
}
