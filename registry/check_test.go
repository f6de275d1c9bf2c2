package registry

import "testing"

func TestCheckHelpers(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{CheckHostPort("listen", ""), `listen "": missing port in address`},
		{CheckHostPort("address", "nohost"), `address "nohost": address nohost: missing port in address`},
		{CheckOneOf("protocol", "sctp", "tcp", "udp"), `protocol "sctp": want "tcp" or "udp"`},
		{CheckOneOf("format", "x", "native", "graphite", "statsd"), `format "x": want "native", "graphite" or "statsd"`},
		{CheckOneOf("mode", "b", "a"), `mode "b": want "a"`},
	} {
		if c.err == nil || c.err.Error() != c.want {
			t.Errorf("got %v, want %s", c.err, c.want)
		}
	}
	for _, err := range []error{
		CheckHostPort("listen", "127.0.0.1:0"),
		CheckHostPort("listen", ":2003"),
		CheckOneOf("protocol", "udp", "tcp", "udp"),
	} {
		if err != nil {
			t.Errorf("unexpected error: %v", err)
		}
	}
}
