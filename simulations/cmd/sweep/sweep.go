package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// sweep is a sweep file: scenarios x every combination of the varied settings x seeds.
type sweep struct {
	Seeds     int      `toml:"seeds"`      // seeds per scenario and setting (default 5)
	FirstSeed uint64   `toml:"first_seed"` // default 1
	Scenarios []string `toml:"scenarios"`  // scenario files, relative to the sweep file
	Vary      []vary   `toml:"vary"`

	dir string // the sweep file's directory
}

// vary is one scenario key and the values a sweep gives it (TOML values, as written there).
type vary struct {
	Key    string   `toml:"key"`
	Values []string `toml:"values"`
}

// loadSweep reads a sweep file.
func loadSweep(path string) (*sweep, error) {
	sw := &sweep{Seeds: 5, FirstSeed: 1, dir: filepath.Dir(path)}
	md, err := toml.DecodeFile(path, sw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("%s: unknown key %s (keys: seeds, first_seed, scenarios, [[vary]] key and values)", path, und[0])
	}
	switch {
	case len(sw.Scenarios) == 0:
		return nil, fmt.Errorf("%s: scenarios: name at least one scenario file", path)
	case sw.Seeds < 1 || sw.Seeds > 1000:
		return nil, fmt.Errorf("%s: seeds = %d: must be between 1 and 1000", path, sw.Seeds)
	}
	for i, v := range sw.Vary {
		if v.Key == "" || len(v.Values) == 0 {
			return nil, fmt.Errorf("%s: vary[%d]: give a key and at least one value", path, i)
		}
	}
	for _, s := range sw.Scenarios {
		if _, err := os.Stat(filepath.Join(sw.dir, s)); err != nil {
			return nil, fmt.Errorf("%s: scenarios: %w", path, err)
		}
	}
	return sw, nil
}

// jobs are the command lines of every run, bin being the simulations' test binary, each
// writing under out/<scenario>[_<settings>]/seed-N.
func (sw *sweep) jobs(out, bin string) []string {
	var lines []string
	for _, sc := range sw.Scenarios {
		path := filepath.Join(sw.dir, sc)
		base := strings.TrimSuffix(filepath.Base(sc), ".toml")
		for _, sets := range combinations(sw.Vary) {
			name, args := base, ""
			for _, s := range sets {
				name += "_" + strings.NewReplacer(".", "-", "=", "-", "\"", "", " ", "").Replace(s)
				args += " -set " + quote(s)
			}
			for k := range sw.Seeds {
				lines = append(lines, fmt.Sprintf("%s -test.run '^TestScenario$' -test.timeout 0 -scenario %s -seed %d -out %s%s",
					bin, quote(path), sw.FirstSeed+uint64(k), quote(filepath.Join(out, name)), args))
			}
		}
	}
	return lines
}

// combinations are every choice of one value per varied key ("key=value" each).
func combinations(vs []vary) [][]string {
	out := [][]string{nil}
	for _, v := range vs {
		var next [][]string
		for _, prefix := range out {
			for _, val := range v.Values {
				next = append(next, append(append([]string(nil), prefix...), v.Key+"="+val))
			}
		}
		out = next
	}
	return out
}

// quote makes s one shell word.
func quote(s string) string {
	if s != "" && !strings.ContainsAny(s, " '\"\\$`!*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

var errNoRuns = errors.New("no runs found")
