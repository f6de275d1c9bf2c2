package agent

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/registry"
)

// convertedLine finds the line of the converted file a loader error names.
var convertedLine = regexp.MustCompile(`(?:^|\n)converted\.toml:(\d+)|\(line (\d+)\)`)

// CheckConverted loads a converter's output as -check does (the loader,
// then every plugin's Init) with the plugins of reg. It returns "" when the
// router takes it, else the router's complaint on one line and the line of
// the output it names (0: none), for the converter to point at the
// construct that line came from.
func CheckConverted(reg *registry.Registry, text string) (msg string, line int) {
	rc, err := ParseConfig(reg, "converted.toml", text, func(string) (string, bool) { return "", false })
	if err == nil {
		_, err = New(rc, zerolog.Nop())
	}
	if err == nil {
		return "", 0
	}
	msg = err.Error()
	if m := convertedLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1] + m[2])
	}
	return strings.ReplaceAll(msg, "\n", " "), line
}
