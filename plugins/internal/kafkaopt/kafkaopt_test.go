package kafkaopt

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestCheck(t *testing.T) {
	ok := Defaults()
	ok.Brokers = []string{"127.0.0.1:9092", "kafka-2:9092"}
	if err := ok.Check(); err != nil {
		t.Fatalf("valid keys refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(c *Common)
		want string
	}{
		{"no brokers", func(c *Common) { c.Brokers = nil }, "brokers: at least one"},
		{"bad port", func(c *Common) { c.Brokers = []string{"k:abc"} }, "brokers"},
		{"no port", func(c *Common) { c.Brokers = []string{"kafka"} }, "brokers"},
		{"dial timeout", func(c *Common) { c.DialTimeout = 0 }, "dial_timeout"},
		{"sasl mechanism", func(c *Common) { c.SASLMechanism = "GSSAPI"; c.SASLUsername = "u" }, `sasl_mechanism "GSSAPI"`},
		{"sasl user", func(c *Common) { c.SASLMechanism = "PLAIN" }, "sasl_username is empty"},
		{"sasl without mechanism", func(c *Common) { c.SASLUsername = "u" }, "need sasl_mechanism"},
		{"two passwords", func(c *Common) {
			c.SASLMechanism, c.SASLUsername, c.SASLPassword, c.SASLPasswordFile = "SCRAM-SHA-512", "u", "p", "/f"
		}, "set one"},
		{"tls key without cert", func(c *Common) { c.TLSKey = "/k" }, "tls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Check()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Check() = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestCheckFormat(t *testing.T) {
	for _, f := range []string{"graphite", "statsd", "json"} {
		if err := CheckFormat(f); err != nil {
			t.Fatal(err)
		}
	}
	if err := CheckFormat("pickle"); err == nil {
		t.Fatal("pickle accepted")
	}
}

func TestOptionsPasswordFile(t *testing.T) {
	c := Defaults()
	c.Brokers = []string{"127.0.0.1:9092"}
	c.SASLMechanism, c.SASLUsername = "SCRAM-SHA-256", "router"
	c.SASLPasswordFile = filepath.Join(t.TempDir(), "missing")
	if _, err := c.Options(zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "sasl_password_file") {
		t.Fatalf("a missing password file: %v", err)
	}
	os.WriteFile(c.SASLPasswordFile, []byte("secret\n"), 0o600)
	cl, err := c.Options(zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Release()
	// seed brokers, client id, dial timeout, logger, metadata age, SASL
	if len(cl.Opts) != 6 {
		t.Fatalf("%d options, want 6", len(cl.Opts))
	}
}
