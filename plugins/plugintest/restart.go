package plugintest

import (
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// RestartUnderLoad sends requests that newReq makes through each client
// (one goroutine each) and calls restart five times, ten answered requests
// apart; every request must be answered 200 and emit one metric into out.
// It reports whether a request went over HTTP/2.
func RestartUnderLoad(t *testing.T, clients []*http.Client, newReq func() *http.Request, out *Capture, restart func()) (h2 bool) {
	t.Helper()
	var mu sync.Mutex
	ok := 0
	answered := make(chan struct{}, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for n, client := range clients {
		defer client.CloseIdleConnections()
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				res, err := client.Do(newReq())
				if err != nil {
					t.Errorf("client %d, request %d: %v", n, i, err)
					return
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					t.Errorf("client %d, request %d: status %d", n, i, res.StatusCode)
					return
				}
				mu.Lock()
				ok++
				h2 = h2 || res.ProtoMajor == 2
				mu.Unlock()
				select {
				case answered <- struct{}{}:
				default:
				}
			}
		})
	}
	served := func(n int) { // waits until n more requests were answered
		mu.Lock()
		want := ok + n
		mu.Unlock()
		for {
			mu.Lock()
			got := ok
			mu.Unlock()
			if got >= want || t.Failed() {
				return
			}
			select {
			case <-answered:
			case <-time.After(10 * time.Second):
				t.Fatal("no request answered for 10s")
			}
		}
	}
	served(10)
	for range 5 {
		restart()
		served(10)
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if !out.WaitFor(ok, 5*time.Second) || out.Len() != ok {
		t.Fatalf("%d metrics emitted for %d requests answered", out.Len(), ok)
	}
	return h2
}
