package prometheus_remote_write

import "os"

func writeFile(name, s string) error { return os.WriteFile(name, []byte(s), 0o600) }
