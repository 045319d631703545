package gateway

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Where settings come from besides the command line: WSGATE_* environment
// variables and the -config YAML file, and -print-config, which writes the
// result back as such a file with each value's source.

// A source is where a flag's value came from. Higher sources win:
// command line > environment > config file > built-in default.
type source string

const (
	fromDefault source = "default"
	fromFile    source = "file"
	fromEnv     source = "env"
	fromFlag    source = "flag"
)

// applyEnv sets every flag that has a WSGATE_* variable from it, and
// records the source. A variable set to "" counts: WSGATE_ORIGINS= clears
// the file's origins, WSGATE_MAX_CONNS= is an error. The command line,
// parsed after it, wins.
func applyEnv(fs *flag.FlagSet, lookupEnv func(string) (string, bool), sources map[string]source) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || cliOnly[f.Name] && f.Name != "config" { // -config is WSGATE_CONFIG
			return
		}
		name := envName(f.Name)
		if v, ok := lookupEnv(name); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("invalid value %q for %s: %v", v, name, e)
			}
			sources[f.Name] = fromEnv
		}
	})
	return err
}

// applyConfigFile sets flags from a YAML file: a mapping of flag names
// (without the dash) to scalar values written as on the command line
// (max-conns: 50000, ping-interval: 30s, max-queue: 4M, origins: "a,b"),
// and records the source and the line of each key. from names what gave
// the file's name (-config or WSGATE_CONFIG), for the error when it cannot
// be read. Unknown keys,
// keys given twice, values that are not scalars and values the flag
// refuses are errors naming the file, line and key. The one nested
// section, channels: (channelconf.go), is read into *channels.
func applyConfigFile(fs *flag.FlagSet, file, from string, sources map[string]source, lines map[string]int,
	channels *[]prefixRule) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("failed to read the config file (%s): %w", from, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc, more yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil // empty, or comments only
	} else if err != nil {
		return yamlError(file, err)
	}
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: want one YAML document", file)
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return fmt.Errorf("%s:%d: want a mapping of setting names to values (max-conns: 50000)", file, m.Line)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if v.Kind == yaml.AliasNode {
			v = v.Alias
		}
		name := k.Value
		at := fmt.Sprintf("%s:%d", file, k.Line)
		f := fs.Lookup(name)
		switch {
		case k.Kind != yaml.ScalarNode:
			return fmt.Errorf("%s: a key must be a setting name", at)
		case name == "channels" && seen[name] != 0:
			return fmt.Errorf("%s: key %q given twice (first on line %d)", at, name, seen[name])
		case name == "channels":
			seen[name] = k.Line
			rs, err := parseChannels(file, v)
			if err != nil {
				return err
			}
			*channels = rs
			continue
		case f == nil:
			return fmt.Errorf("%s: unknown key %q%s", at, name, suggest(fs, name))
		case cliOnly[name]:
			return fmt.Errorf("%s: %q cannot be set in a config file", at, name)
		case seen[name] != 0:
			return fmt.Errorf("%s: key %q given twice (first on line %d)", at, name, seen[name])
		case v.Kind != yaml.ScalarNode:
			return fmt.Errorf("%s: %s: want a single value (lists are comma-separated: \"a,b\")", at, name)
		case v.Tag == "!!null":
			return fmt.Errorf("%s: %s: no value (an empty string is \"\")", at, name)
		}
		seen[name] = k.Line
		if err := fs.Set(name, v.Value); err != nil {
			return fmt.Errorf("%s: invalid value %q for %s: %v", at, v.Value, name, err)
		}
		sources[name], lines[name] = fromFile, k.Line
	}
	return nil
}

// yamlLine is the line yaml names in a syntax error, "yaml: line N: ...";
// it names none on the first line.
var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?`)

// yamlError is a YAML syntax error of file as "FILE:LINE: invalid YAML:
// what", without the yaml package's prefix.
func yamlError(file string, err error) error {
	msg := err.Error()
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil {
		return fmt.Errorf("%s: invalid YAML: %s", file, msg)
	}
	line := cmp.Or(m[1], "1")
	return fmt.Errorf("%s:%s: invalid YAML: %s", file, line, msg[len(m[0]):])
}

// suggest returns ` (did you mean "x"?)` when name is a flag's name
// written with a dash in front or underscores, or "".
func suggest(fs *flag.FlagSet, name string) string {
	guess := strings.ReplaceAll(strings.ToLower(strings.TrimLeft(name, "-")), "_", "-")
	guess = strings.TrimPrefix(guess, "wsgate-")
	if guess != name && fs.Lookup(guess) != nil && !cliOnly[guess] {
		return fmt.Sprintf(" (did you mean %q?)", guess)
	}
	return ""
}

// formatConfig writes every setting in the config file's format, one per
// line, each with its source as a comment; secrets that are set read
// "<redacted>". -workers auto is printed as the count it comes to (auto
// workers, if 1 to maxWorkers), with "(auto)" in the comment. Read back
// with -config, it gives the same values (the secrets aside).
func formatConfig(fs *flag.FlagSet, sources map[string]source, file string, auto int) string {
	var lines, comments []string
	width := 0
	fs.VisitAll(func(f *flag.Flag) {
		if cliOnly[f.Name] {
			return
		}
		v := f.Value.String()
		if secretFlags[f.Name] && v != "" {
			v = "<redacted>"
		}
		resolved := ""
		if f.Name == "workers" && v == "auto" && auto >= 1 && auto <= maxWorkers {
			v, resolved = strconv.Itoa(auto), " (auto)"
		}
		line := f.Name + ": " + yamlScalar(v)
		comment := string(sources[f.Name])
		if sources[f.Name] == fromEnv {
			comment += " " + envName(f.Name)
		}
		comment += resolved
		if m := zeroMeans[f.Name]; m != "" && v == "0" {
			comment += " (0: " + m + ")"
		}
		lines, comments = append(lines, line), append(comments, comment)
		width = max(width, len(line))
	})
	var b strings.Builder
	b.WriteString("# wsgate effective configuration; each value's source: flag, env, file or default.\n")
	if file != "" {
		fmt.Fprintf(&b, "# config file: %s\n", file)
	}
	for i, line := range lines {
		fmt.Fprintf(&b, "%-*s  # %s\n", width, line, comments[i])
	}
	return b.String()
}

// yamlScalar writes v as a YAML scalar that reads back as v: integers and
// booleans plain, everything else double-quoted (a JSON string is a valid
// YAML double-quoted scalar).
func yamlScalar(v string) string {
	if _, err := strconv.ParseInt(v, 10, 64); err == nil || v == "true" || v == "false" {
		return v
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

func envName(flagName string) string {
	return "WSGATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}
