// Package script runs the scripted tests of the pure cores (routing, ton/channel): a tiny
// cockroachdb/datadriven. A script in testdata/*.txt is blocks of one command line, "----",
// and the expected output up to a blank line; lines starting with '#' are comments. Each
// package's test gives the function that runs one command; with rewrite, the scripts are
// written back with the output they produced, for a reviewer to read as a diff.
//
//	var rewrite = flag.Bool("rewrite", false, "rewrite testdata/*.txt with the actual output")
//
//	func TestScripts(t *testing.T) {
//		script.RunDir(t, *rewrite, func(t *testing.T) script.Runner {
//			e := newEnv(t) // one world per script
//			return e.run
//		})
//	}
package script

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Runner runs the command on line of file and returns its output.
type Runner func(file string, line int, cmd string) string

// RunDir runs every testdata/*.txt as a subtest, each with a Runner of its own.
func RunDir(t *testing.T, rewrite bool, newRunner func(t *testing.T) Runner) {
	files, _ := filepath.Glob("testdata/*.txt")
	if len(files) == 0 {
		t.Fatal("no scripts in testdata")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) { Run(t, file, rewrite, newRunner(t)) })
	}
}

// Run runs the script in file with run, comparing each command's output with the expected
// one (or, with rewrite, writing the script back with the outputs it got).
func Run(t *testing.T, file string, rewrite bool, run Runner) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	var out strings.Builder
	for i := 0; i < len(lines); i++ {
		cmd := lines[i]
		if cmd == "" || strings.HasPrefix(cmd, "#") {
			out.WriteString(cmd + "\n")
			continue
		}
		if i+1 >= len(lines) || lines[i+1] != "----" {
			t.Fatalf("%s:%d: command without ----", file, i+1)
		}
		start := i + 1
		for i = start + 1; i < len(lines) && lines[i] != ""; i++ {
		}
		want := strings.Join(lines[start+1:i], "\n")
		got := strings.TrimRight(run(file, start, cmd), "\n")
		if got != want && !rewrite {
			t.Errorf("%s:%d: %s\ngot:\n%s\nwant:\n%s", file, start, cmd, got, want)
		}
		out.WriteString(cmd + "\n----\n")
		if got != "" {
			out.WriteString(got + "\n")
		}
		if i < len(lines) {
			out.WriteString("\n")
		}
	}
	if rewrite {
		if err := os.WriteFile(file, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
