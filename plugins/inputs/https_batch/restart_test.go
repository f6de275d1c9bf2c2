package https_batch

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

// TestRestartSharesSocket: a new instance on the same address starts while
// the old one runs (it shares the socket instead of failing to bind), and
// the old one stops (graceful shutdown) under a client sending batches on
// fresh connections: none is refused or reset, every batch is answered 200
// and emitted once.
func TestRestartSharesSocket(t *testing.T) {
	addr := plugintest.FreeAddr(t)
	out := plugintest.NewCapture()
	start := func() (stop func()) {
		g := registryNew()
		g.Listen = addr
		g.Keystore.Type = "static"
		g.Keystore.Keys = map[string]string{"dev": "123"}
		env, _ := plugintest.Env(t, "inputs.https_batch")
		if err := g.Init(env); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- g.Run(ctx, out) }()
		if g.Addr("listen") == nil {
			t.Fatalf("gateway did not start: %v", <-done)
		}
		var once sync.Once
		stop = func() {
			once.Do(func() {
				cancel()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("Run: %v", err)
					}
				case <-time.After(20 * time.Second):
					t.Error("Run did not return")
				}
			})
		}
		t.Cleanup(stop)
		return stop
	}
	stopCur := start()
	body := gz(t, "restart.metric 1 1700000000\n")
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	newReq := func() *http.Request {
		req, _ := http.NewRequest("POST", "http://"+addr+"/ingest", bytes.NewReader(body))
		req.Header.Set("X-Polymur-Key", "123")
		return req
	}
	plugintest.RestartUnderLoad(t, []*http.Client{client}, newReq, out, func() {
		stopNext := start()
		stopCur()
		stopCur = stopNext
	})
}
