package agent

import (
	"context"
	"sync"

	"github.com/metricsrouter/router/plugins/metric"
)

// fakeOut records the lines it is given.
type fakeOut struct {
	Address string `toml:"address"`
	mu      sync.Mutex
	got     []string
}

func (f *fakeOut) Connect(context.Context) error { return nil }

func (f *fakeOut) Write(_ context.Context, b metric.Batch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range b {
		f.got = append(f.got, string(b[i].Raw()))
	}
	return nil
}

func (f *fakeOut) Close() error { return nil }

func (f *fakeOut) Destination() string { return f.Address }
