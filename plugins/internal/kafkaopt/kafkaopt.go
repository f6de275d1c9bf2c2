// Package kafkaopt holds what outputs.kafka and inputs.kafka configure the
// same way: the brokers, SASL, TLS and the record format, turned into
// franz-go client options.
package kafkaopt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/metricsrouter/router/registry"
)

// Formats a record's value can be written in.
const (
	FormatGraphite = "graphite"
	FormatStatsD   = "statsd"
	FormatJSON     = "json"
)

// CheckFormat validates a format key.
func CheckFormat(f string) error {
	switch f {
	case FormatGraphite, FormatStatsD, FormatJSON:
		return nil
	}
	return fmt.Errorf("format %q: want \"graphite\", \"statsd\" or \"json\"", f)
}

// Common are the connection keys of both Kafka plugins.
type Common struct {
	// Brokers to bootstrap from ("host:port"); the client learns the
	// rest of the cluster from them.
	Brokers []string `toml:"brokers"`
	// ClientID is sent to the brokers (their logs and quotas name it).
	ClientID string `toml:"client_id"`
	// DialTimeout bounds a connection attempt to one broker.
	DialTimeout registry.Duration `toml:"dial_timeout"`
	// SASL: mechanism "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512" ("":
	// none); the password directly or from a file (read at start).
	SASLMechanism    string `toml:"sasl_mechanism"`
	SASLUsername     string `toml:"sasl_username"`
	SASLPassword     string `toml:"sasl_password"`
	SASLPasswordFile string `toml:"sasl_password_file"`
	// TLS to the brokers, as on every output (tls_enable, tls_ca, ...).
	registry.TLSClient
}

// Defaults are the defaults of Common.
func Defaults() Common {
	return Common{ClientID: "router", DialTimeout: registry.Duration(10 * time.Second)}
}

// Check validates the keys without opening anything (Init, -check).
func (c *Common) Check() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: at least one host:port"))
	}
	for _, b := range c.Brokers {
		if err := registry.CheckAddress("brokers", b); err != nil {
			errs = append(errs, err)
		}
	}
	if c.DialTimeout <= 0 {
		errs = append(errs, errors.New("dial_timeout: must be positive"))
	}
	switch c.SASLMechanism {
	case "":
		if c.SASLUsername != "" || c.SASLPassword != "" || c.SASLPasswordFile != "" {
			errs = append(errs, errors.New("sasl_username / sasl_password need sasl_mechanism"))
		}
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if c.SASLUsername == "" {
			errs = append(errs, fmt.Errorf("sasl_mechanism %s: sasl_username is empty", c.SASLMechanism))
		}
		if c.SASLPassword != "" && c.SASLPasswordFile != "" {
			errs = append(errs, errors.New("sasl_password and sasl_password_file: set one"))
		}
	default:
		errs = append(errs, fmt.Errorf("sasl_mechanism %q: want \"PLAIN\", \"SCRAM-SHA-256\" or \"SCRAM-SHA-512\"", c.SASLMechanism))
	}
	if err := c.TLSClient.Check(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Client is what Options built: the options and what must be released
// when the client is closed.
type Client struct {
	Opts []kgo.Opt
	tls  *tlsDialer
}

// Release frees what the options hold (TLS configurations kept for
// reloading on SIGHUP). Call it after the kgo.Client is closed.
func (c *Client) Release() {
	if c.tls != nil {
		c.tls.release()
	}
}

// Options returns the franz-go options for the common keys, with the
// client's log at warn and above written to log.
func (c *Common) Options(log zerolog.Logger) (*Client, error) {
	out := &Client{}
	out.Opts = append(out.Opts,
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.DialTimeout(time.Duration(c.DialTimeout)),
		kgo.WithLogger(logger{log}),
		// a produce or fetch error that needs new metadata (a leader
		// moved, too few in-sync replicas) waits for the next refresh;
		// franz-go's default spaces refreshes 5 s apart, so two such
		// errors in a row would hold a batch 10 s
		kgo.MetadataMinAge(time.Second),
	)
	if c.SASLMechanism != "" {
		pass := c.SASLPassword
		if c.SASLPasswordFile != "" {
			b, err := os.ReadFile(c.SASLPasswordFile)
			if err != nil {
				return nil, fmt.Errorf("sasl_password_file: %w", err)
			}
			pass = strings.TrimRight(string(b), "\r\n")
		}
		switch c.SASLMechanism {
		case "PLAIN":
			out.Opts = append(out.Opts, kgo.SASL(plain.Auth{User: c.SASLUsername, Pass: pass}.AsMechanism()))
		case "SCRAM-SHA-256":
			out.Opts = append(out.Opts, kgo.SASL(scram.Auth{User: c.SASLUsername, Pass: pass}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			out.Opts = append(out.Opts, kgo.SASL(scram.Auth{User: c.SASLUsername, Pass: pass}.AsSha512Mechanism()))
		}
	}
	if c.TLSClient.Enabled() {
		d := &tlsDialer{c: &c.TLSClient, timeout: time.Duration(c.DialTimeout), cfgs: map[string]*tls.Config{}}
		out.tls = d
		out.Opts = append(out.Opts, kgo.Dialer(d.dial))
	}
	return out, nil
}

// tlsDialer dials brokers over TLS with one configuration per broker host
// (its name is the one verified), built on first use.
type tlsDialer struct {
	c       *registry.TLSClient
	timeout time.Duration
	mu      sync.Mutex
	cfgs    map[string]*tls.Config
}

func (d *tlsDialer) config(host string) (*tls.Config, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cfg, ok := d.cfgs[host]; ok {
		return cfg, nil
	}
	cfg, err := d.c.ClientConfig(host)
	if err != nil {
		return nil, err
	}
	d.cfgs[host] = cfg
	return cfg, nil
}

func (d *tlsDialer) dial(ctx context.Context, network, host string) (net.Conn, error) {
	cfg, err := d.config(host)
	if err != nil {
		return nil, err
	}
	td := &tls.Dialer{NetDialer: &net.Dialer{Timeout: d.timeout}, Config: cfg}
	conn, err := td.DialContext(ctx, network, host)
	if err != nil {
		var re *tls.RecordHeaderError
		var ce *tls.CertificateVerificationError
		if errors.As(err, &re) || errors.As(err, &ce) {
			return nil, registry.TLSHandshakeError(host, err)
		}
		return nil, err
	}
	return conn, nil
}

func (d *tlsDialer) release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for h, cfg := range d.cfgs {
		registry.ReleaseTLS(cfg)
		delete(d.cfgs, h)
	}
}

// logger writes franz-go's warnings and errors to the plugin's log.
type logger struct{ log zerolog.Logger }

func (l logger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l logger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	var e *zerolog.Event
	switch level {
	case kgo.LogLevelError:
		e = l.log.Error()
	case kgo.LogLevelWarn:
		e = l.log.Warn()
	default:
		return
	}
	for i := 0; i+1 < len(keyvals); i += 2 {
		k, _ := keyvals[i].(string)
		e = e.Interface(k, keyvals[i+1])
	}
	e.Msg("kafka: " + msg)
}
