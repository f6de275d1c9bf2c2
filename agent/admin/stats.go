package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/agent/metrics"
	"github.com/metricsrouter/router/plugins/netx"
)

// statsServer serves /metrics and /healthz on [agent] stats_addr.
type statsServer struct {
	srv *http.Server
	ln  net.Listener
}

func startStatsServer(addr string, reg *metrics.Registry, healthy func() bool, withPprof bool, api http.HandlerFunc, log zerolog.Logger) (*statsServer, error) {
	ln, err := netx.Listen(addr, netx.Config{Log: log.With().Str("service", "stats_addr").Logger()})
	if err != nil {
		return nil, fmt.Errorf("stats_addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", reg.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if healthy() {
			_, _ = io.WriteString(w, "ok\n")
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "degraded\n")
	})
	if api != nil {
		mux.HandleFunc("/api/destinations", api)
		mux.HandleFunc("/api/destinations/", api)
	}
	writeTimeout := 10 * time.Second
	if withPprof {
		writeTimeout = 65 * time.Second // /debug/pprof/profile?seconds=60
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Str("addr", addr).Msg("stats server stopped")
		}
	}()
	log.Info().Str("addr", ln.Addr().String()).Msg("stats server listening")
	return &statsServer{srv: srv, ln: ln}, nil
}

func (s *statsServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}
